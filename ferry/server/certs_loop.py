"""The certificate loop and the edges' acknowledgments of the TLS feed.

``CertLoop`` runs ``CertService.run_once`` every few seconds in a worker thread (a
level-triggered loop like liveness and the autoscaler: each cycle logs its reason
line). ``EdgeAcks`` remembers which feed version each region's edge last asked from,
so an order answers its challenge only once the edges that follow the feed have it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferry.server.certs_service import CertService

__all__ = ["EDGE_FRESH_SECONDS", "CertLoop", "EdgeAcks"]

log = logging.getLogger("ferry.server.certs")

#: An edge that polled the feed this recently is waited for before a challenge is answered.
EDGE_FRESH_SECONDS = 60.0


class EdgeAcks:
    """Which feed version each region's edge last asked from, and when. Thread-safe."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._seen: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def record(self, region: str, version: int) -> None:
        with self._lock:
            self._seen[region] = (version, self._now())

    def lagging(self, version: int) -> list[str]:
        """Regions seen lately whose edge has not yet asked from ``version`` on."""
        now = self._now()
        with self._lock:
            return sorted(
                r
                for r, (v, at) in self._seen.items()
                if now - at < EDGE_FRESH_SECONDS and v < version
            )


class CertLoop:
    """Runs ``CertService.run_once`` every ``interval`` seconds in a worker thread."""

    def __init__(self, service: CertService) -> None:
        self.service = service
        self._last = ""

    async def run_forever(self, interval: float = 5.0) -> None:
        """Cycles until cancelled; a failing cycle is logged and the loop goes on. A cycle
        starts every ``interval`` seconds, or at once when a certificate changes (a name
        just added is ordered without waiting)."""
        while True:
            seen = self.service.changes.version()
            try:
                reason = await asyncio.to_thread(self.service.run_once)
                log.log(
                    logging.INFO if reason != self._last else logging.DEBUG, "certs: %s", reason
                )
                self._last = reason
            except Exception:
                log.exception("certificate cycle failed; retrying in %.1fs", interval)
                await asyncio.sleep(interval)
                continue
            await self.service.changes.wait(None, seen, interval)
