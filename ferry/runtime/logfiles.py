"""Bounding the disk space of containers' log files without moving their offsets.

A container's ``stdout.log`` is appended to (``O_APPEND``) by its process for as
long as it runs, and read by the agent's log shipper from a remembered offset.
Truncating or rotating it would race the writer and invalidate that offset, so
instead the *shipped* prefix is released with a punched hole
(``FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE``): its disk blocks are freed and
it reads back as zeros, while the file's apparent size, and so every offset and
the writer's appends, stay as they were. ``du`` shows what the file holds on
disk; ``ls -l`` its ever-growing apparent size.

Layout of a released file, oldest bytes first::

    [ hole: reads as NUL ][ >= KEEP_TAIL_BYTES shipped text ][ not shipped yet ]
    0                     punched (block-aligned)             shipped       size

Only bytes before the shipped offset are ever punched, so lines the control
plane has not received yet (it may be down for hours) are never freed here:
while it is down the file grows and nothing is freed; once shipping resumes,
the next release frees everything shipped in one call. (The shipper itself
skips a backlog over its cap: ``ferry.agent.logship``.) The last ``KEEP_TAIL_BYTES``
before the shipped offset stay real text, for the driver's start-failure
message and for a person running ``tail``.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from ferry.errors import RuntimeFailure
from ferry.runtime.host_os import punch_hole

__all__ = [
    "KEEP_TAIL_BYTES",
    "PUNCH_THRESHOLD_BYTES",
    "punch_range",
    "release_shipped_prefix",
    "resume_offset",
]

log = logging.getLogger(__name__)

KEEP_TAIL_BYTES = 64 * 1024
PUNCH_THRESHOLD_BYTES = 1024 * 1024

# Filesystems (by st_dev) that answered EOPNOTSUPP: not asked again, logged once.
_unpunchable_devices: set[int] = set()


def punch_range(
    shipped: int,
    punched: int,
    *,
    block_size: int,
    keep_tail: int = KEEP_TAIL_BYTES,
    threshold: int = PUNCH_THRESHOLD_BYTES,
) -> tuple[int, int] | None:
    """The byte range ``(start, end)`` of a log file to punch next, or None.

    ``shipped``: bytes before it have been delivered; ``punched``: where the hole
    punched so far ends (0 if none). The range starts at ``punched`` rounded down
    and ends ``keep_tail`` bytes before ``shipped`` rounded down, both to
    ``block_size`` (> 0), so only whole blocks are freed and no kept byte is
    zeroed. None unless the range spans at least ``threshold`` bytes, so a
    quiet log costs no syscall. Pure; ``end <= shipped`` always holds.
    """
    start = punched - punched % block_size
    keep_from = shipped - keep_tail
    end = keep_from - keep_from % block_size
    if end - start < max(threshold, block_size):
        return None
    return start, end


def release_shipped_prefix(
    path: Path,
    shipped: int,
    *,
    keep_tail: int = KEEP_TAIL_BYTES,
    threshold: int = PUNCH_THRESHOLD_BYTES,
) -> int:
    """Free the disk blocks of the bytes of ``path`` before ``shipped``, as ``punch_range``
    decides; return how many bytes were punched (0: nothing worth it, or unsupported).

    Never touches a byte at or after ``shipped``, nor the ``keep_tail`` bytes before
    it, so unshipped lines are never lost; safe while another process appends.
    Stateless and idempotent: where the hole ends is read back from the file
    (``SEEK_DATA``), so it survives agent restarts. A missing file is fine (0).
    On a filesystem that cannot punch holes it does nothing and says so once,
    at debug level. Raises ``RuntimeFailure`` when the file cannot be opened for
    writing or ``fallocate`` fails otherwise.
    """
    if shipped - keep_tail < threshold:  # nothing can qualify: skip the syscalls
        return 0
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)  # fallocate needs a writable fd
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise RuntimeFailure(f"could not open {path} to free its shipped part: {exc}") from exc
    try:
        stat = os.fstat(fd)
        if stat.st_dev in _unpunchable_devices:
            return 0
        chosen = punch_range(
            min(shipped, stat.st_size),
            _data_start(fd, stat.st_size),
            block_size=stat.st_blksize,
            keep_tail=keep_tail,
            threshold=threshold,
        )
        if chosen is None:
            return 0
        start, end = chosen
        if not punch_hole(fd, start, end - start):
            _unpunchable_devices.add(stat.st_dev)
            log.debug("cannot punch holes in %s: its log files are not bounded", path)
            return 0
        return end - start
    finally:
        os.close(fd)


def resume_offset(fd: int, *, keep_tail: int = KEEP_TAIL_BYTES) -> int:
    """Where a reader that remembers nothing of a log file (an agent just restarted)
    should start reading it, so it never reads the punched hole as text.

    0 for a file that was never punched. Otherwise the first data byte after the
    hole, moved past the newline that ends the line the hole cut, when that
    newline lies within ``keep_tail`` bytes: those bytes were shipped (the hole
    always ends ``keep_tail`` or more bytes before the shipped offset). Leaves
    ``fd``'s position unchanged. Lines after the hole may be delivered again, as
    a restarted shipper always did.
    """
    position = os.lseek(fd, 0, os.SEEK_CUR)
    try:
        size = os.fstat(fd).st_size
        start = _data_start(fd, size)
        if start == 0:
            return 0
        head = os.pread(fd, keep_tail, start)
        newline = head.find(b"\n")
        return start if newline < 0 else start + newline + 1
    finally:
        os.lseek(fd, position, os.SEEK_SET)


def _data_start(fd: int, size: int) -> int:
    """Offset of the first byte not in a hole; ``size`` when there is none. Moves ``fd``."""
    try:
        return os.lseek(fd, 0, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # no data at all: empty, or all hole
            return size
        return 0  # SEEK_DATA unsupported here: then nothing was punched either
