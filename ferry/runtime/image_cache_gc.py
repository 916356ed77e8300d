"""Garbage collection of the host's image cache (``images.RegistryImageStore.collect``).

``image_gc`` decides which images to delete; ``CacheCollector`` surveys the cache for
it and carries the decision out. Under the digest's lock it renames a rootfs to
``rootfs/.trash-…`` (atomic, so nobody ever sees a half-deleted rootfs), forgets its
config and layout tags, and only then deletes the trash and the blobs no remaining tag
references. A crash leaves trash, which the next collect removes, as it removes the
staging dirs of an interrupted unpack that no ``ensure`` owns.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import stat
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ferry.errors import RuntimeFailure
from ferry.runtime.image_cache import (
    OCI_MANIFEST,
    STAGING_PREFIX,
    TRASH_PREFIX,
    blob_path,
    digest_lock_path,
    discard_rootfs,
    is_hex_digest,
    last_used,
    layout_lock_path,
    locked,
    mark_used,
)
from ferry.runtime.image_gc import (
    CachedImage,
    GcPolicy,
    ImageDeletion,
    choose_images_to_delete,
    overlay_lower_dirs,
)

__all__ = ["MOUNTINFO", "CacheCollector"]

MOUNTINFO = Path("/proc/self/mountinfo")
# What a layout's index may point at; blob GC walks these and refuses anything else.
_MANIFEST_TYPES = frozenset(
    {
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _try_locked(path: Path) -> Iterator[bool]:
    """``locked`` (exclusive) without waiting: yields whether the lock was free and is held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def _disk_usage(path: Path) -> int:
    """Bytes ``path`` occupies on disk (a tree: each inode once); 0 if it is gone."""
    seen: set[tuple[int, int]] = set()
    total = 0
    pending = [path]
    while pending:
        current = pending.pop()
        try:
            info = current.lstat()
        except OSError:
            continue
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        total += info.st_blocks * 512
        if stat.S_ISDIR(info.st_mode):
            with contextlib.suppress(OSError):
                pending.extend(current.iterdir())
    return total


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path``; ``None`` if it is gone."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _same_dir(path: Path, directory: Path) -> bool:
    if path == directory:
        return True
    try:
        return os.path.samefile(path, directory)
    except OSError:
        return False


def _fail_unless_gone(
    function: object, path: str, exc_info: tuple[object, BaseException, object]
) -> None:
    """``shutil.rmtree`` error handler: a file someone else removed first is fine."""
    if os.path.lexists(path):
        raise exc_info[1]


class CacheCollector:
    """Garbage-collects the image cache in ``cache_dir`` (its OCI layout is ``layout``).

    Keep one per cache: it remembers rootfs sizes between collects (a rootfs never
    changes once unpacked). Blocking; thread- and process-safe as ``collect`` says.
    """

    def __init__(self, cache_dir: Path, layout: Path, *, mountinfo: Path = MOUNTINFO) -> None:
        """``mountinfo``: where ``collect`` learns which rootfs mounted overlays use."""
        self.cache_dir = cache_dir
        self.layout = layout
        self.mountinfo = mountinfo
        self._rootfs_sizes: dict[tuple[str, int], int] = {}

    def collect(self, needed_hexes: Iterable[str], policy: GcPolicy) -> list[ImageDeletion]:
        """Delete the cached images ``choose_images_to_delete`` picks; return them, least
        recently used first, with their sizes and reasons.

        ``needed_hexes``: the hex digests of the images this host needs, iterated once
        under the GC lock. An image a mounted overlay uses is kept whatever they say.
        Also removes the leftovers of an interrupted collect or unpack, and the layout's
        blobs that no remaining image references.

        One collect runs at a time; an image being ensured right now, or ensured after
        the decision, is kept. Raises ``RuntimeFailure`` before deleting anything if the
        host's mounts cannot be read.
        """
        with locked(self.cache_dir / "locks" / "gc.lock"):
            needed = set(needed_hexes) | self._mounted()
            self._discard_stale_staging()
            images = self._survey()
            for hex_digest in needed & images.keys():
                # needed now counts as a use, for rollback order
                mark_used(self.cache_dir, hex_digest)
            chosen = choose_images_to_delete(
                images.values(), {f"sha256:{h}" for h in needed}, time.time(), policy
            )
            deleted = [
                deletion
                for deletion in chosen
                if self._delete(deletion.digest.removeprefix("sha256:"), images, policy)
            ]
            self._empty_trash()
            self._collect_blobs()
        return deleted

    # -- survey ----------------------------------------------------------------

    def _mounted(self) -> set[str]:
        """Digests whose rootfs is a lower layer of a mounted overlay (a container's)."""
        try:
            mountinfo = self.mountinfo.read_text()
        except OSError as exc:
            raise RuntimeFailure(
                f"cannot read {self.mountinfo} to learn which images containers use: {exc}",
                hint="image garbage collection needs Linux /proc; nothing was deleted",
            ) from exc
        rootfs_dir = self.cache_dir / "rootfs"
        mounted: set[str] = set()
        lowers = [Path(lower) for lower in overlay_lower_dirs(mountinfo)]
        for path in lowers:
            if is_hex_digest(path.name) and _same_dir(path.parent, rootfs_dir):
                mounted.add(path.name)
        # A container in a user namespace has an idmapped bind of the rootfs as its
        # lower layer, elsewhere: the same directory (device and inode) by another path.
        others = {_identity(path) for path in lowers if path.name not in mounted}
        others.discard(None)
        if others:
            for entry in rootfs_dir.iterdir():
                if is_hex_digest(entry.name) and _identity(entry) in others:
                    mounted.add(entry.name)
        return mounted

    def _survey(self) -> dict[str, CachedImage]:
        """Every image in the cache by hex: unpacked, half-deleted or only in the layout."""
        with locked(layout_lock_path(self.cache_dir), shared=True):
            tags = self._layout_tags() or {}
        owned: dict[str, set[str]] = {}
        for tag, blobs in tags.items():
            owned.setdefault(tag.removesuffix("-oci"), set()).update(blobs or ())
        users = Counter(blob for blobs in owned.values() for blob in blobs)
        names = {p.name for p in (self.cache_dir / "rootfs").iterdir()}
        names |= {p.stem for p in (self.cache_dir / "configs").glob("*.json")}
        names |= {tag.removesuffix("-oci") for tag in tags}
        images: dict[str, CachedImage] = {}
        for hex_digest in sorted(n for n in names if is_hex_digest(n)):
            own_blobs = {blob for blob in owned.get(hex_digest, ()) if users[blob] == 1}
            size = self._rootfs_size(hex_digest)
            size += sum(_disk_usage(blob_path(self.layout, blob)) for blob in own_blobs)
            images[hex_digest] = CachedImage(
                f"sha256:{hex_digest}", size, last_used(self.cache_dir, hex_digest)
            )
        return images

    def _rootfs_size(self, hex_digest: str) -> int:
        """Disk usage of an unpacked rootfs; measured once per unpack (a rootfs never changes)."""
        rootfs = self.cache_dir / "rootfs" / hex_digest
        try:
            key = (hex_digest, rootfs.stat().st_ino)
        except FileNotFoundError:
            return 0
        if key not in self._rootfs_sizes:
            self._rootfs_sizes[key] = _disk_usage(rootfs)
        return self._rootfs_sizes[key]

    # -- deletion --------------------------------------------------------------

    def _delete(self, hex_digest: str, surveyed: dict[str, CachedImage], policy: GcPolicy) -> bool:
        """Delete one chosen image unless it is being ensured or was used since the survey."""
        with _try_locked(digest_lock_path(self.cache_dir, hex_digest)) as is_locked:
            if not is_locked:
                return False  # an ensure holds it: it is being used right now
            used_at = last_used(self.cache_dir, hex_digest)
            fresh = time.time() - used_at < policy.grace_seconds
            if fresh or used_at > surveyed[hex_digest].last_used:
                return False
            discard_rootfs(self.cache_dir, hex_digest)
            self._untag(hex_digest)
            (self.cache_dir / "used" / hex_digest).unlink(missing_ok=True)
        return True

    def _discard_stale_staging(self) -> None:
        """Trash unpack dirs and config temporaries that a crash left, if no ensure owns them."""
        leftovers = [
            *(self.cache_dir / "rootfs").glob(f"{STAGING_PREFIX}*"),
            *(self.cache_dir / "configs").glob("*.tmp"),
        ]
        for leftover in leftovers:
            hex_digest = leftover.name.removeprefix(STAGING_PREFIX).removesuffix(".tmp")
            if not is_hex_digest(hex_digest):
                continue
            with _try_locked(digest_lock_path(self.cache_dir, hex_digest)) as is_locked:
                if not is_locked:
                    continue
                if leftover.is_dir():
                    with contextlib.suppress(FileNotFoundError):
                        leftover.rename(leftover.with_name(f"{TRASH_PREFIX}{leftover.name}"))
                else:
                    leftover.unlink(missing_ok=True)

    def _empty_trash(self) -> None:
        for trash in (self.cache_dir / "rootfs").glob(f"{TRASH_PREFIX}*"):
            try:
                shutil.rmtree(trash, onerror=_fail_unless_gone)
            except OSError as exc:  # left for the next collect
                log.warning("could not remove %s: %s", trash, exc)

    # -- the OCI layout ----------------------------------------------------------

    def _layout_tags(self) -> dict[str, set[str] | None] | None:
        """Each layout tag → the blobs it references (manifest, config, layers, children),
        or ``None`` for a tag whose manifests cannot all be read and walked.

        ``{}`` without a layout; ``None`` when the index itself is unreadable. The caller
        holds the layout lock.
        """
        try:
            index = json.loads((self.layout / "index.json").read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            return None
        if not isinstance(index, dict):
            return None
        tags: dict[str, set[str] | None] = {}
        for descriptor in index.get("manifests") or []:
            annotations = descriptor.get("annotations") or {}
            name = annotations.get("org.opencontainers.image.ref.name", "")
            blobs = self._referenced_blobs(descriptor)
            known = tags.get(name, set())
            tags[name] = None if blobs is None or known is None else known | blobs
        return tags

    def _referenced_blobs(self, root: dict[str, Any]) -> set[str] | None:
        """The blobs a manifest (or index) descriptor reaches; ``None`` if one cannot be read."""
        found: set[str] = set()
        pending: list[tuple[dict[str, Any], bool]] = [(root, True)]  # (descriptor, a manifest?)
        while pending:
            descriptor, is_manifest = pending.pop()
            digest = descriptor.get("digest")
            if not isinstance(digest, str) or digest in found:
                continue
            found.add(digest)
            if not is_manifest:
                continue
            if descriptor.get("mediaType") not in _MANIFEST_TYPES:
                return None
            try:
                body = json.loads(blob_path(self.layout, digest).read_text())
            except (OSError, ValueError):
                return None
            if not isinstance(body, dict):
                return None
            if isinstance(body.get("config"), dict):
                pending.append((body["config"], False))
            pending.extend((d, False) for d in body.get("layers") or [] if isinstance(d, dict))
            pending.extend((d, True) for d in body.get("manifests") or [] if isinstance(d, dict))
        return found

    def _untag(self, hex_digest: str) -> None:
        """Drop the image's tags from the layout index (atomically replaced)."""
        with locked(layout_lock_path(self.cache_dir)):
            path = self.layout / "index.json"
            try:
                index = json.loads(path.read_text())
            except FileNotFoundError:
                return
            except ValueError:
                log.warning("%s is unreadable: sha256:%s stays in the layout", path, hex_digest)
                return
            gone = {hex_digest, f"{hex_digest}-oci"}
            manifests = index.get("manifests", [])
            kept = [
                d
                for d in manifests
                if (d.get("annotations") or {}).get("org.opencontainers.image.ref.name") not in gone
            ]
            if len(kept) == len(manifests):
                return
            index["manifests"] = kept
            temporary = path.with_suffix(".tmp")
            with temporary.open("w") as out:
                json.dump(index, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)

    def _collect_blobs(self) -> None:
        """Delete the layout's blobs no tag references, and skopeo's crash leftovers."""
        blobs_dir = self.layout / "blobs"
        with locked(layout_lock_path(self.cache_dir)):
            tags = self._layout_tags()
            if tags is None or None in tags.values():
                log.warning("the image layout %s cannot be walked: no blob is deleted", self.layout)
                return
            referenced = {blob for blobs in tags.values() for blob in blobs or ()}
            # skopeo writes each blob to a temporary in the layout root, under our oci.lock
            leftovers = list(self.layout.glob("oci-put-blob*")) if self.layout.is_dir() else []
            if blobs_dir.is_dir():
                for algorithm in blobs_dir.iterdir():
                    leftovers += [
                        blob
                        for blob in algorithm.iterdir()
                        if f"{algorithm.name}:{blob.name}" not in referenced
                    ]
            for leftover in leftovers:
                leftover.unlink(missing_ok=True)
