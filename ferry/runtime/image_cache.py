"""Paths, locks and use marks of the host's image cache, shared by the two modules that
work on it: ``images`` (pull and unpack; its docstring describes the layout of
``cache_dir``) and ``image_cache_gc`` (garbage collection).

Everything here is a small, blocking file-system primitive; the callers decide which
locks to hold around them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "OCI_MANIFEST",
    "STAGING_PREFIX",
    "TRASH_PREFIX",
    "blob_path",
    "digest_lock_path",
    "discard_rootfs",
    "is_hex_digest",
    "last_used",
    "layout_lock_path",
    "locked",
    "mark_used",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# rootfs/<prefix>…: an unpack in progress (or a crash's leftover), and deleted images
STAGING_PREFIX = ".unpack-"
TRASH_PREFIX = ".trash-"


@contextlib.contextmanager
def locked(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an fcntl lock on ``path``: excludes other processes and other threads alike."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def is_hex_digest(text: str) -> bool:
    """Whether ``text`` is the 64 lowercase hex digits of a sha256 digest. Pure."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def digest_lock_path(cache_dir: Path, hex_digest: str) -> Path:
    """The lock file guarding one image's rootfs, config and use mark."""
    return cache_dir / "locks" / f"{hex_digest}.lock"


def layout_lock_path(cache_dir: Path) -> Path:
    """The lock file guarding the shared OCI layout (its ``index.json`` and blobs)."""
    return cache_dir / "locks" / "oci.lock"


def blob_path(layout: Path, digest: str) -> Path:
    """Where the OCI layout stores the blob ``<algorithm>:<hex>``. Pure."""
    algorithm, _, value = digest.partition(":")
    return layout / "blobs" / algorithm / value


def mark_used(cache_dir: Path, hex_digest: str) -> None:
    """Record that the image is used now (its use mark's mtime).

    Best effort: on a full disk the mark may not be creatable, and the config's
    mtime (written at unpack) then stands in for it.
    """
    with contextlib.suppress(OSError):
        (cache_dir / "used" / hex_digest).touch()


def last_used(cache_dir: Path, hex_digest: str) -> float:
    """The use mark's mtime; for an image cached before marks existed, its unpack time;
    0.0 for an image with neither."""
    for path in (
        cache_dir / "used" / hex_digest,
        cache_dir / "configs" / f"{hex_digest}.json",
        cache_dir / "rootfs" / hex_digest,
    ):
        with contextlib.suppress(FileNotFoundError):
            return path.stat().st_mtime
    return 0.0


def discard_rootfs(cache_dir: Path, hex_digest: str) -> Path | None:
    """Move the rootfs to the trash and forget its config; the trash path, if any.

    The caller holds the digest's lock and deletes the trash (or leaves it to the next
    collect). The rename is atomic: the rootfs is either whole in place or gone, never
    half deleted under its name.
    """
    rootfs = cache_dir / "rootfs" / hex_digest
    trash = rootfs.with_name(f"{TRASH_PREFIX}{hex_digest}-{uuid.uuid4().hex[:8]}")
    (cache_dir / "configs" / f"{hex_digest}.json").unlink(missing_ok=True)
    try:
        rootfs.rename(trash)
    except FileNotFoundError:
        return None
    return trash
