"""Write a machine's ``config.files`` into its root filesystem before its process starts.

The files go through the container's overlay mount, so they land in the
machine's own upper layer and never touch the shared image. Paths are walked
one component at a time relative to the rootfs with ``O_NOFOLLOW``: a symlink
in the image can never lead a write outside the rootfs. A symlinked directory
on the way (``/etc -> /host/etc``) is refused; a symlink at the file's own
path (busybox's ``/bin/arch -> busybox``) is replaced by the file, its target
untouched. Missing directories are created (mode 0755, like ``mkdir -p``);
files are written with mode 0644, replacing whatever the image had there.
With ``owner`` (a machine in its own user namespace: its root's host uid and
gid), the files and the directories made for them belong to the machine's
root, as if it had written them itself; without, to the agent's user.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence
from pathlib import Path

from ferry.errors import RuntimeFailure

__all__ = ["GuestFile", "write_guest_files"]

#: ``(absolute path inside the machine, content)``.
GuestFile = tuple[str, bytes]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


def write_guest_files(
    rootfs: Path, files: Sequence[GuestFile], owner: tuple[int, int] | None = None
) -> None:
    """Write each file under ``rootfs``, owned by ``owner`` (host uid, gid) when given.
    Blocking; idempotent (files are replaced).

    Raises ``RuntimeFailure`` naming the path when a component is a symlink
    or not a directory, or the write fails.
    """
    for guest_path, content in files:
        try:
            _write_one(rootfs, guest_path, content, owner)
        except OSError as exc:
            reason = (
                "a part of the path is a symlink or not a directory in the image"
                if exc.errno in (errno.ELOOP, errno.ENOTDIR)
                else exc.strerror or str(exc)
            )
            raise RuntimeFailure(
                f"cannot write config.files {guest_path}: {reason}",
                hint="choose a guest_path whose directories are real directories in the image",
            ) from None


def _write_one(
    rootfs: Path, guest_path: str, content: bytes, owner: tuple[int, int] | None
) -> None:
    parts = [part for part in guest_path.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise OSError(errno.EINVAL, "not an absolute file path")
    directory = os.open(rootfs, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            made = False
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=directory)
                made = True
            inner = os.open(part, _DIR_FLAGS, dir_fd=directory)
            if made and owner is not None:
                os.fchown(inner, *owner)
            os.close(directory)
            directory = inner
        try:
            handle = os.open(parts[-1], _FILE_FLAGS, 0o644, dir_fd=directory)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            # The image has a symlink there: replace the link itself, never its target.
            os.unlink(parts[-1], dir_fd=directory)
            handle = os.open(parts[-1], _FILE_FLAGS, 0o644, dir_fd=directory)
        try:
            if owner is not None:
                os.fchown(handle, *owner)
            os.fchmod(handle, 0o644)
            view = memoryview(content)
            while view:
                written = os.write(handle, view)
                view = view[written:]
        finally:
            os.close(handle)
    finally:
        os.close(directory)
