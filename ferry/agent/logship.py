"""Ships machines' stdout/stderr to the control plane (``ferry logs`` reads it there)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from ferry.agent.reconcile import container_id
from ferry.errors import FerryError
from ferry.model import Machine
from ferry.runtime.driver import Driver

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 256 * 1024


class LogSink(Protocol):
    def upload_logs(self, host_id: str, machine_id: str, lines: list[str]) -> object: ...


class LogShipper:
    """Tails each current container's log file from where it last stopped. One thread uses it."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._offsets: dict[str, int] = {}

    def ship(self, machines: Iterable[Machine], sink: LogSink, host_id: str) -> None:
        seen = set()
        for m in machines:
            cid = container_id(m)
            seen.add(cid)
            path = self.driver.log_path(cid)
            offset = self._offsets.get(cid, 0)
            try:
                with path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read(MAX_BATCH_BYTES)
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1
            if end == 0:
                continue
            lines = chunk[:end].decode(errors="replace").splitlines()
            try:
                sink.upload_logs(host_id, m.id, lines)
            except FerryError as exc:
                log.debug("log upload for %s failed: %s", m.id, exc)
                continue
            self._offsets[cid] = offset + end
        for cid in set(self._offsets) - seen:
            del self._offsets[cid]
