"""The edge's on-disk copy of the files ``[[statics]]`` serve: one directory per image and path.

Layout of ``cache_dir`` (under the edge's state dir)::

    <hex>/<key>/     the files of image sha256:<hex> under one guest_path (key: its hash)
    .work-…/         a fetch in progress, or a crash's leftover (removed at start)

A fetch pulls the image by digest from the registry the hosts pull from
(``skopeo copy`` to a ``dir:`` layout), extracts only the ``guest_path``
subtree of its layers into a temporary directory and renames it into place:
a crash never leaves a half copy that looks whole. The copy stays on disk, so
the edge serves it after a restart while the control plane is down.

Extraction applies the layers in order with their whiteouts (``.wh.<name>``,
``.wh..wh..opq``), and keeps regular files (with their mtime, for
Last-Modified), directories and hard links; symbolic links, devices and
members whose names hold ``..`` are skipped: nothing written can point
outside the copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path

from ferry.errors import NotFoundError, RuntimeFailure

__all__ = ["StaticCache", "extract_subtree", "subtree_key"]

log = logging.getLogger(__name__)

_WORK_PREFIX = ".work-"
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_TOOL_TIMEOUT = 600
_CHUNK = 1 << 20


def subtree_key(guest_path: str) -> str:
    """The directory name of one guest_path's copy. Pure."""
    return hashlib.sha256(guest_path.encode()).hexdigest()[:16]


def _parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in name.split("/") if p not in ("", "."))


def _relative(parts: tuple[str, ...], root: tuple[str, ...]) -> tuple[str, ...] | None:
    """``parts`` relative to ``root``; None when outside it or unsafe. Pure."""
    if ".." in parts or parts[: len(root)] != root:
        return None
    return parts[len(root) :]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _clear(directory: Path) -> None:
    if directory.is_dir():
        for child in directory.iterdir():
            _remove(child)


def extract_subtree(layers: Iterable[Path], guest_path: str, dest: Path) -> int:
    """Apply the tar ``layers`` (oldest first; gzip, bzip2, xz or plain) to ``dest``,
    keeping only what lies under ``guest_path``. Returns the number of files kept.

    Blocking. Raises ``RuntimeFailure`` for a layer that is not a readable tar.
    """
    root = _parts(guest_path)
    dest.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        try:
            with tarfile.open(layer, "r:*") as tar:
                for member in tar:
                    _apply(tar, member, root, dest)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise RuntimeFailure(f"cannot read image layer {layer.name}: {exc}") from exc
    return sum(1 for p in dest.rglob("*") if p.is_file())


def _apply(
    tar: tarfile.TarFile, member: tarfile.TarInfo, root: tuple[str, ...], dest: Path
) -> None:
    parts = _parts(member.name)
    if parts and parts[-1].startswith(_WHITEOUT):
        opaque = parts[-1] == _OPAQUE
        hidden = parts[:-1] if opaque else (*parts[:-1], parts[-1].removeprefix(_WHITEOUT))
        if ".." in hidden:
            return
        rel = _relative(hidden, root)
        if rel is None:
            if root[: len(hidden)] == hidden:
                _clear(dest)  # the whole subtree lies under what the layer hides
            return
        target = dest.joinpath(*rel)
        if opaque or not rel:
            _clear(target)
        else:
            _remove(target)
        return
    rel = _relative(parts, root)
    if rel is None:
        return
    target = dest.joinpath(*rel)
    if member.isdir():
        if target.exists() and not target.is_dir():
            target.unlink()
        target.mkdir(parents=True, exist_ok=True)
    elif member.isreg() and rel:
        source = tar.extractfile(member)
        if source is None:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove(target)
        with source, target.open("wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        os.utime(target, (member.mtime, member.mtime))
    elif member.islnk() and rel:
        linked = _relative(_parts(member.linkname), root)
        if linked and dest.joinpath(*linked).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            _remove(target)
            os.link(dest.joinpath(*linked), target)
    # symlinks, devices, fifos, links to outside the subtree: not served


class StaticCache:
    """Fetches and keeps the statics' files of images. Blocking; thread-safe (one fetch
    per image and path at a time); one edge process per ``cache_dir``."""

    def __init__(self, cache_dir: Path, *, insecure_registries: Iterable[str] = ()) -> None:
        self.cache_dir = cache_dir.absolute()
        self.insecure_registries = frozenset(insecure_registries)
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.cache_dir.glob(f"{_WORK_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def path(self, digest: str, guest_path: str) -> Path:
        """Where the copy of ``guest_path`` of image ``digest`` lives (when fetched). Pure."""
        return self.cache_dir / digest.removeprefix("sha256:") / subtree_key(guest_path)

    def ensure(self, image: str, digest: str, guest_path: str) -> Path:
        """The copy's directory, fetching it first if it is not on disk.

        ``image`` is a digest reference (``registry/repo@sha256:…``). Raises
        ``NotFoundError`` when the registry has no such image, ``RuntimeFailure``
        when it is unreachable or a layer cannot be read.
        """
        final = self.path(digest, guest_path)
        if final.is_dir():
            return final
        with self._guard:
            lock = self._locks.setdefault((digest, guest_path), threading.Lock())
        with lock:
            if final.is_dir():
                return final
            work = self.cache_dir / f"{_WORK_PREFIX}{uuid.uuid4().hex}"
            try:
                work.mkdir()
                layers = self._pull(image, work / "image")
                count = extract_subtree(layers, guest_path, work / "files")
                final.parent.mkdir(parents=True, exist_ok=True)
                (work / "files").rename(final)
            except OSError as exc:
                raise RuntimeFailure(f"could not keep the statics of {image}: {exc}") from exc
            finally:
                shutil.rmtree(work, ignore_errors=True)
            log.info("statics: %d files of %s under %s", count, image, guest_path)
            return final

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Delete the copies of every image whose digest is not in ``keep``; return them."""
        wanted = {d.removeprefix("sha256:") for d in keep}
        removed = []
        for entry in self.cache_dir.iterdir():
            if entry.name.startswith(_WORK_PREFIX) or entry.name in wanted:
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
        return removed

    def _pull(self, image: str, layout: Path) -> list[Path]:
        name = image.removeprefix("docker://")
        registry = name.split("/", 1)[0]
        tls = ["--src-tls-verify=false"] if registry in self.insecure_registries else []
        argv = ["skopeo", "copy", "--quiet", *tls, f"docker://{name}", f"dir:{layout}"]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=_TOOL_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"could not pull {image} for its statics: {exc}") from exc
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()[-1000:]
            if "manifest unknown" in stderr.lower() or "not found" in stderr.lower():
                raise NotFoundError(f"{image} is not in the registry ({stderr})")
            raise RuntimeFailure(f"could not pull {image} for its statics: {stderr}")
        try:
            manifest = json.loads((layout / "manifest.json").read_text())
            digests = [str(layer["digest"]) for layer in manifest["layers"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RuntimeFailure(f"{image}: unreadable image manifest: {exc}") from exc
        return [layout / d.partition(":")[2] for d in digests]
