"""The agent's ``.internal`` resolver: the host's DNS server on fdaa::3 and its feed.

Two threads. One runs an event loop serving ``InternalDnsServer`` on
``fdaa::3`` port 53 in the host's namespace (the address goes on ``lo``; the
machines reach it through the host, their 6PN gateway). The other long-polls
the control plane's records for this host (``GET /v1/hosts/{id}/internal``),
swaps them into the server atomically and keeps a copy on disk; the server
starts from that copy, so it answers while the control plane is down. A
record follows a machine's start or stop within one long-poll round trip.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ferry.errors import FerryError, ValidationError
from ferry.net import sixpn
from ferry.net.dns_server import InternalDnsServer, load_records, save_records
from ferry.net.internal_records import InternalRecords
from ferry.net.iproute import ip_batch

__all__ = ["DnsLoop", "FetchRecords"]

log = logging.getLogger("ferry.agent.dns")

WATCH_SECONDS = 30
RETRY_SECONDS = 1.0


#: One long poll of the control plane's records: ``(since, timeout) -> (version, JSON)``.
FetchRecords = Callable[[int, float], tuple[int, str]]


class DnsLoop:
    """``start()`` binds and returns; the threads run until ``stopping`` is set."""

    def __init__(
        self,
        fetch: FetchRecords,
        region: str,
        copy: Path,
        upstream: tuple[str, int] | None,
        stopping: threading.Event,
    ) -> None:
        self.fetch = fetch
        self.copy = copy
        self.stopping = stopping
        self.version = 0
        self._applied = ""
        self.server = InternalDnsServer(self._load(), region=region, upstream=upstream)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    def start(self) -> list[threading.Thread]:
        """Put fdaa::3 on ``lo``, serve it, follow the feed. Raises ``OSError`` or
        ``NetworkError`` when the address cannot be served."""
        ip_batch([f"addr replace {sixpn.DNS_ADDRESS}/128 dev lo nodad", "link set lo up"])
        serving = threading.Thread(target=self._serve, name="dns", daemon=True)
        serving.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure
        feeding = threading.Thread(target=self._follow, name="dns-feed", daemon=True)
        feeding.start()
        return [serving, feeding]

    def apply(self, records: InternalRecords) -> None:
        """Answer from ``records`` from now on, and keep them on disk."""
        self._loop.call_soon_threadsafe(self.server.update, records)
        save_records(self.copy, records)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start(str(sixpn.DNS_ADDRESS), 53))
        except OSError as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_until_complete(self._until_stopped())
        self._loop.run_until_complete(self.server.close())

    async def _until_stopped(self) -> None:
        await asyncio.to_thread(self.stopping.wait)

    def _follow(self) -> None:
        while not self.stopping.is_set():
            try:
                version, text = self.fetch(self.version, WATCH_SECONDS)
                if version != self.version and text != self._applied:
                    self.apply(InternalRecords.from_json(text))
                    self._applied = text  # the same records again: no swap, no disk write
                self.version = version
            except (FerryError, OSError) as exc:
                log.warning("dns feed: %s; answering from the records we have", exc)
                self.stopping.wait(RETRY_SECONDS)

    def _load(self) -> InternalRecords:
        try:
            return load_records(self.copy)
        except ValidationError as exc:
            log.warning("dns: the records copy %s is damaged (%s): starting empty", self.copy, exc)
            return InternalRecords()
