"""Volumes on one host: each an ext4 image file, loop-mounted under the agent's state dir.

Layout of ``root`` (``<state_dir>/volumes``)::

    images/<vol_id>.img        the filesystem (a sparse file of exactly size_gb GiB)
    mnt/<vol_id>/              where it is mounted (``mount -o loop``: the loop device
                               is freed when it is unmounted)
    snapshots/<snap_id>.img    a snapshot: a sparse copy of an image

The size limit is the image's: a write past it fails with ENOSPC inside the
machine. Made with ``-m 0`` (no blocks reserved for root: the user gets the
size asked). Files keep their ids as the machine sees them (root is 0 on
disk): the runc driver mounts the volume into a machine in a user namespace
through an idmapped mount (``ferry.runtime.idmap_mounts``), so a volume moves
from one machine to the next, whatever uid range each gets.

Every method blocks (it runs mkfs, mount, resize2fs, cp) and is idempotent
where stated. Failures raise ``RuntimeFailure`` with the tool's own words.
Mounts live in the host's mount namespace, so they outlive the agent; a new
agent finds them mounted (``is_mounted``), and after a reboot mounts again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ferry.errors import RuntimeFailure

__all__ = ["GIB", "LoopVolumes", "VolumeFigures", "can_resize_online"]

GIB = 1024**3
_TOOL_TIMEOUT = 120.0


@dataclass(frozen=True)
class VolumeFigures:
    """``statvfs`` of a mounted volume, in Fly's field names."""

    block_size: int
    blocks: int
    blocks_free: int
    blocks_avail: int
    bytes_total: int
    bytes_used: int


def _run(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=_TOOL_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeFailure(f"`{argv[0]}` failed: {exc}") from exc
    if done.returncode != 0:
        words = (done.stderr or done.stdout).decode(errors="replace").strip()[-500:]
        raise RuntimeFailure(f"`{' '.join(argv)}` failed: {words or 'no output'}")
    return done.stdout.decode(errors="replace")


class LoopVolumes:
    """The volumes and snapshots kept under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self.images = self.root / "images"
        self.mounts = self.root / "mnt"
        self.snapshots = self.root / "snapshots"
        for directory in (self.images, self.mounts, self.snapshots):
            directory.mkdir(parents=True, exist_ok=True)

    # -- where things are ------------------------------------------------------

    def image(self, volume_id: str) -> Path:
        return self.images / f"{_safe(volume_id)}.img"

    def mountpoint(self, volume_id: str) -> Path:
        return self.mounts / _safe(volume_id)

    def snapshot(self, snapshot_id: str) -> Path:
        return self.snapshots / f"{_safe(snapshot_id)}.img"

    def has_image(self, volume_id: str) -> bool:
        return self.image(volume_id).is_file()

    def size_bytes(self, volume_id: str) -> int:
        """The image's size (the filesystem's hard limit); 0 without an image."""
        try:
            return self.image(volume_id).stat().st_size
        except FileNotFoundError:
            return 0

    def is_mounted(self, volume_id: str) -> bool:
        return os.path.ismount(self.mountpoint(volume_id))

    def volume_ids(self) -> set[str]:
        """Ids of every image on this host."""
        return {p.stem for p in self.images.glob("*.img")}

    def snapshot_ids(self) -> set[str]:
        return {p.stem for p in self.snapshots.glob("*.img")}

    # -- making, growing, removing -------------------------------------------

    def make(self, volume_id: str, size_gb: int) -> None:
        """A new empty ext4 image of ``size_gb`` GiB. Made aside and renamed into place,
        so a crash never leaves a half-made image that looks whole. No-op if it exists."""
        if self.has_image(volume_id):
            return
        partial = self.image(volume_id).with_suffix(".partial")
        with open(partial, "wb") as handle:
            handle.truncate(size_gb * GIB)
        try:
            _run("mkfs.ext4", "-q", "-F", "-m", "0", "-L", volume_id[-16:], str(partial))
        except RuntimeFailure:
            partial.unlink(missing_ok=True)
            raise
        partial.rename(self.image(volume_id))

    def restore(self, volume_id: str, snapshot_id: str, size_gb: int) -> None:
        """A new image copied from the snapshot, grown to ``size_gb`` GiB. No-op if the
        image exists; ``RuntimeFailure`` if the snapshot is not on this host."""
        if self.has_image(volume_id):
            return
        source = self.snapshot(snapshot_id)
        if not source.is_file():
            raise RuntimeFailure(f"snapshot {snapshot_id} is not on this host")
        partial = self.image(volume_id).with_suffix(".partial")
        _run("cp", "--sparse=always", "--reflink=auto", str(source), str(partial))
        try:
            if partial.stat().st_size < size_gb * GIB:
                with open(partial, "r+b") as handle:
                    handle.truncate(size_gb * GIB)
                _run("e2fsck", "-f", "-p", str(partial))
                _run("resize2fs", str(partial))
        except RuntimeFailure:
            partial.unlink(missing_ok=True)
            raise
        partial.rename(self.image(volume_id))

    def mount(self, volume_id: str) -> Path:
        """Loop-mount the image (nodev, nosuid); returns the mount point. Idempotent."""
        point = self.mountpoint(volume_id)
        point.mkdir(exist_ok=True)
        if not os.path.ismount(point):
            _run(
                "mount",
                "-t",
                "ext4",
                "-o",
                "loop,nodev,nosuid",
                str(self.image(volume_id)),
                str(point),
            )
        return point

    def grow(self, volume_id: str, size_gb: int) -> bool:
        """Grow the image to ``size_gb`` GiB (never shrinks) and its filesystem with it:
        online if mounted and the kernel lets this process (``CAP_SYS_RESOURCE``), else
        offline when nothing uses it. Returns whether the filesystem has the full size
        now; ``False``: it grows at the volume's next mount (``settle``). Idempotent."""
        image = self.image(volume_id)
        wanted = size_gb * GIB
        if image.stat().st_size < wanted:
            with open(image, "r+b") as handle:
                handle.truncate(wanted)
        if self.filesystem_bytes(volume_id) >= image.stat().st_size:
            return True
        device = self._loop_device(image)
        if device is not None and can_resize_online():
            _run("losetup", "-c", device)  # the loop device learns the file's new size
            _run("resize2fs", device)
            return True
        return self.settle(volume_id)

    def filesystem_bytes(self, volume_id: str) -> int:
        """The filesystem's size as its superblock says (0 without an image)."""
        try:
            with open(self.image(volume_id), "rb") as handle:
                handle.seek(1024)
                block = handle.read(0x158)
        except FileNotFoundError:
            return 0
        if len(block) < 0x158 or block[0x38:0x3A] != b"\x53\xef":
            raise RuntimeFailure(f"the image of volume {volume_id} is not an ext4 filesystem")
        count = int.from_bytes(block[0x4:0x8], "little")
        if int.from_bytes(block[0x60:0x64], "little") & 0x80:  # INCOMPAT_64BIT
            count |= int.from_bytes(block[0x150:0x154], "little") << 32
        return count * (1024 << int.from_bytes(block[0x18:0x1C], "little"))

    def settle(self, volume_id: str) -> bool:
        """Grow the filesystem to its image offline if it is smaller and nothing but the
        agent's own mount uses it (no machine's mount keeps its loop device): unmount,
        check, resize, mount again. Returns whether the filesystem has its full size."""
        image = self.image(volume_id)
        if self.filesystem_bytes(volume_id) >= image.stat().st_size:
            return True
        was_mounted = self.is_mounted(volume_id)
        self.unmount(volume_id)
        if not self._loop_released(image):  # a machine's mount holds it: later
            if was_mounted:
                self.mount(volume_id)
            return False
        _run("e2fsck", "-f", "-p", str(image))
        _run("resize2fs", str(image))
        if was_mounted:
            self.mount(volume_id)
        return True

    def unmount(self, volume_id: str) -> None:
        """Unmount (the loop device goes with it). Idempotent."""
        point = self.mountpoint(volume_id)
        if os.path.ismount(point):
            _run("umount", str(point))
        with contextlib.suppress(FileNotFoundError, OSError):
            point.rmdir()

    def remove(self, volume_id: str) -> None:
        """Unmount and delete the image. Idempotent. Only ever called for a volume its
        owner destroyed (the control plane's ``pending_destroy``)."""
        self.unmount(volume_id)
        self.image(volume_id).unlink(missing_ok=True)
        self.image(volume_id).with_suffix(".partial").unlink(missing_ok=True)

    # -- snapshots --------------------------------------------------------------

    def take_snapshot(self, volume_id: str, snapshot_id: str) -> int:
        """A consistent copy of the volume: with it mounted, the filesystem is frozen
        (``fsfreeze``: writes wait, everything written is on the image) while the image
        is copied. Returns the bytes the copy holds. Idempotent."""
        target = self.snapshot(snapshot_id)
        if not target.is_file():
            partial = target.with_suffix(".partial")
            point = self.mountpoint(volume_id)
            frozen = os.path.ismount(point)
            if frozen:
                _run("fsfreeze", "--freeze", str(point))
            try:
                _run(
                    "cp",
                    "--sparse=always",
                    "--reflink=auto",
                    str(self.image(volume_id)),
                    str(partial),
                )
            finally:
                if frozen:
                    _run("fsfreeze", "--unfreeze", str(point))
            partial.rename(target)
        return target.stat().st_blocks * 512

    def remove_snapshot(self, snapshot_id: str) -> None:
        self.snapshot(snapshot_id).unlink(missing_ok=True)

    # -- figures ------------------------------------------------------------------

    def figures(self, volume_id: str) -> VolumeFigures | None:
        """The mounted filesystem's figures, or ``None`` if it is not mounted."""
        point = self.mountpoint(volume_id)
        if not os.path.ismount(point):
            return None
        s = os.statvfs(point)
        return VolumeFigures(
            block_size=s.f_frsize,
            blocks=s.f_blocks,
            blocks_free=s.f_bfree,
            blocks_avail=s.f_bavail,
            bytes_total=s.f_blocks * s.f_frsize,
            bytes_used=(s.f_blocks - s.f_bfree) * s.f_frsize,
        )

    def capacity_bytes(self) -> int:
        """What this host can give volumes in all: the free space of the disk under
        ``root`` plus the space its images and snapshots already take."""
        s = os.statvfs(self.root)
        taken = sum(
            p.stat().st_blocks * 512
            for folder in (self.images, self.snapshots)
            for p in folder.glob("*.img")
        )
        return s.f_bavail * s.f_frsize + taken

    def _loop_released(self, image: Path) -> bool:
        """Whether no loop device serves ``image`` (the kernel frees an autoclear device
        on its last unmount, possibly a moment later: waits up to a second)."""
        deadline = time.monotonic() + 1.0
        while self._loop_device(image) is not None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _loop_device(self, image: Path) -> str | None:
        found = _run("losetup", "-j", str(image)).strip()
        return found.split(":", 1)[0] if found else None

    def wipe(self) -> None:
        """Unmount everything and remove ``root`` (tests and ``cluster down --purge``)."""
        for volume_id in self.volume_ids() | {p.name for p in self.mounts.iterdir()}:
            self.unmount(volume_id)
        shutil.rmtree(self.root, ignore_errors=True)


def can_resize_online() -> bool:
    """Whether this process may grow a mounted ext4 (the kernel asks for
    ``CAP_SYS_RESOURCE``; some sandboxes drop it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> 24 & 1)
    except (OSError, ValueError):
        pass  # no readable status: assume the capability is missing (grow at next start)
    return False


def _safe(identifier: str) -> str:
    if not identifier or "/" in identifier or identifier.startswith("."):
        raise RuntimeFailure(f"invalid volume or snapshot id {identifier!r}")
    return identifier
