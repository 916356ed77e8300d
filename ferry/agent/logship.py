"""Ships machines' stdout/stderr to the control plane (``ferry logs`` reads it there).

After each successful upload the shipper tells the driver how far the log is
shipped (``Driver.release_log``), which frees the disk space of that prefix; so a
chatty machine's log stays small on disk. Bytes not shipped yet are never freed:
while the control plane is down, logs accumulate. Only a backlog over
``MAX_BACKLOG_BYTES`` (an app writing faster than logs ship, or a long outage)
is skipped to its recent end, with a line in the log that says how much.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import Protocol

from ferry.agent.reconcile import container_id
from ferry.errors import FerryError
from ferry.model import Machine
from ferry.runtime.driver import Driver
from ferry.runtime.logfiles import resume_offset

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 256 * 1024
#: The API's limits on one upload (``ferry.server.schemas``): lines, and characters per
#: line. A batch stops at this many lines; a longer line goes in pieces of this length.
MAX_LINES_PER_UPLOAD = 1000
MAX_LINE_CHARS = 16 * 1024
#: Batches per machine per call (the agent calls once a second): up to 1 MiB/s each.
MAX_BATCHES_PER_CALL = 4
#: Unshipped output beyond this is skipped, but for its last ``KEEP_ON_SKIP`` bytes: an app
#: writing faster than logs can be shipped must not fill the host's disk. A line says so.
MAX_BACKLOG_BYTES = 64 * 1024 * 1024
KEEP_ON_SKIP = 1024 * 1024


class LogSink(Protocol):
    def upload_logs(self, host_id: str, machine_id: str, lines: list[str]) -> object: ...


class LogShipper:
    """Tails each current container's log file from where it last stopped. Thread-safe:
    the agent's loop ships every second, and step threads ship a container's rest
    (``ship_rest``) just before they remove it."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._offsets: dict[str, int] = {}
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}  # container -> the error last logged for it

    def ship_rest(self, machine_id: str, cid: str, sink: LogSink, host_id: str) -> None:
        """Ship what is left of ``cid``'s log (bounded as ``ship``), e.g. the last lines of a
        process that exited between two ``ship`` calls. Blocking; never raises."""
        with self._lock:
            try:
                for _ in range(MAX_BATCHES_PER_CALL):
                    if not self._ship_batch(cid, machine_id, sink, host_id):
                        break
            except Exception as exc:  # the container goes anyway; say what was lost
                log.warning("shipping the last lines of %s failed: %s", machine_id, exc)

    def ship(self, machines: Iterable[Machine], sink: LogSink, host_id: str) -> None:
        """Upload up to ``MAX_BATCHES_PER_CALL`` batches of ``MAX_BATCH_BYTES`` of whole new
        lines per machine, releasing what is shipped after each. Blocking; never raises for
        a failed upload (retried next call) or a missing log file.

        A container first seen starts at the beginning of its file, past any freed
        prefix. A line longer than a batch is shipped in batch-sized pieces. A backlog
        over ``MAX_BACKLOG_BYTES`` (the app writes faster than 1 MiB/s for a minute) is
        skipped to its last ``KEEP_ON_SKIP`` bytes, with a line saying how much.

        Any error while shipping one machine's log is logged (once while it repeats) and
        skips that machine until the next call: the other machines' logs keep flowing.
        """
        with self._lock:
            self._ship_all(machines, sink, host_id)

    def _ship_all(self, machines: Iterable[Machine], sink: LogSink, host_id: str) -> None:
        seen = set()
        for m in machines:
            cid = container_id(m)
            seen.add(cid)
            try:
                for _ in range(MAX_BATCHES_PER_CALL):
                    if not self._ship_batch(cid, m.id, sink, host_id):
                        break
            except Exception as exc:  # one machine's failure must not stop the others
                said = f"{type(exc).__name__}: {exc}"
                if self._failing.get(cid) != said:
                    log.warning("shipping the log of %s failed: %s", m.id, said)
                self._failing[cid] = said
            else:
                self._failing.pop(cid, None)
        for cid in set(self._offsets) - seen:
            del self._offsets[cid]
        for cid in set(self._failing) - seen:
            del self._failing[cid]

    def _ship_batch(self, cid: str, machine_id: str, sink: LogSink, host_id: str) -> bool:
        """Ship one batch of ``cid``'s log; whether a full batch went (more may wait)."""
        path = self.driver.log_path(cid)
        notice: list[str] = []
        try:
            with path.open("rb") as f:
                offset = self._offsets.get(cid)
                if offset is None:
                    offset = resume_offset(f.fileno())
                size = os.fstat(f.fileno()).st_size
                if size - offset > MAX_BACKLOG_BYTES:
                    skipped = size - KEEP_ON_SKIP - offset
                    offset += skipped
                    notice = [f"[ferry] {skipped} bytes of output skipped: written faster "
                              "than logs are shipped"]  # fmt: skip
                f.seek(offset)
                chunk = f.read(MAX_BATCH_BYTES)
        except OSError:
            return False
        end = chunk.rfind(b"\n") + 1
        if end == 0 and len(chunk) == MAX_BATCH_BYTES:
            end = len(chunk)  # waiting for its newline would stall this log for good
        if end == 0 and not notice:
            return False
        lines, end = upload_lines(chunk[:end], MAX_LINES_PER_UPLOAD - len(notice))
        lines = notice + lines
        try:
            sink.upload_logs(host_id, machine_id, lines)
        except FerryError as exc:
            log.debug("log upload for %s failed: %s", machine_id, exc)
            return False
        self._offsets[cid] = offset + end
        try:
            self.driver.release_log(cid, offset + end)
        except FerryError as exc:
            log.warning("could not free the shipped log of %s: %s", machine_id, exc)
        return len(chunk) == MAX_BATCH_BYTES or end < len(chunk)


def upload_lines(data: bytes, room: int) -> tuple[list[str], int]:
    """The lines of ``data`` for one upload, and how many bytes of it they take. Pure.

    At most ``room`` lines (at least one line of ``data`` always goes); a line over
    ``MAX_LINE_CHARS`` characters is cut into pieces of that length, each counting.
    """
    lines: list[str] = []
    used = 0
    for raw in data.splitlines(keepends=True):
        pieces = [
            text[i : i + MAX_LINE_CHARS]
            for text in raw.decode(errors="replace").splitlines()
            for i in range(0, max(len(text), 1), MAX_LINE_CHARS)
        ]
        if lines and len(lines) + len(pieces) > room:
            break
        lines += pieces
        used += len(raw)
    return lines, used
