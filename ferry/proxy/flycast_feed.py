"""The edge's copy of every Flycast address: followed from the control plane, kept on disk.

Like the route table (``ferry.proxy.watch``): at start the edge loads the copy
it last saw, so Flycast addresses answer at once even while the control
plane is down; ``run`` long-polls ``GET /v1/edges/{region}/flycast`` and
swaps a new immutable ``FlycastTable`` in when anything changed.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from ferry.errors import FerryError, ValidationError
from ferry.model.flycast import FlycastFeed
from ferry.net.flycast import FlycastEntry, FlycastTable

__all__ = ["FlycastSource", "FlycastWatcher", "table_of"]

log = logging.getLogger("ferry.proxy.flycast")

WATCH_SECONDS = 25.0
RETRY_SECONDS = 1.0


class FlycastSource(Protocol):
    """The one call the watcher makes (``FerryClient.watch_flycast``)."""

    def watch_flycast(self, region: str, since: int = 0, timeout: float = 30) -> FlycastFeed: ...


def table_of(feed: FlycastFeed) -> FlycastTable:
    """The table a feed describes; entries that are not Flycast addresses of their
    network are skipped (logged), never served. Pure but for the log."""
    entries = []
    for item in feed.addresses:
        try:
            address = ipaddress.IPv6Address(item.address)
            entries.append(FlycastEntry(address, item.app, item.network))
        except (ValueError, ValidationError) as exc:
            log.warning("flycast: skipping %s of %s: %s", item.address, item.app, exc)
    return FlycastTable.of(feed.version, entries)


class FlycastWatcher:
    """Holds the current ``FlycastTable``; ``current()`` is a cheap read for the event loop."""

    def __init__(self, source: FlycastSource, region: str, cache_path: Path) -> None:
        self.source = source
        self.region = region
        self.cache_path = cache_path
        self._table = FlycastTable()
        self.connected = False

    def current(self) -> FlycastTable:
        return self._table

    def load_cached(self) -> FlycastTable:
        """Load the copy an earlier run saved, if any (a damaged one is logged and ignored)."""
        try:
            feed = FlycastFeed.model_validate_json(self.cache_path.read_text())
        except FileNotFoundError:
            return self._table
        except (OSError, ValueError) as exc:
            log.warning("flycast: ignoring unreadable copy %s: %s", self.cache_path, exc)
            return self._table
        self._table = table_of(feed)
        return self._table

    def poll_once(self, timeout: float = WATCH_SECONDS) -> bool:
        """One long poll; True when the table changed. Raises ``FerryError`` when unreachable."""
        since = self._table.version if self.connected else 0
        feed = self.source.watch_flycast(self.region, since=since, timeout=timeout)
        self.connected = True
        table = table_of(feed)
        changed = dict(table.entries) != dict(self._table.entries)
        self._table = table
        if changed:
            self._save(feed)
        return changed

    def run(self, stop: threading.Event) -> None:
        """Follow the control plane until ``stop`` is set; never raises."""
        while not stop.is_set():
            try:
                if self.poll_once():
                    log.info("flycast: %d addresses", len(self._table.entries))
            except FerryError as exc:
                if self.connected:
                    log.warning("flycast: control plane unreachable (%s): serving the copy", exc)
                self.connected = False
                stop.wait(RETRY_SECONDS)

    def _save(self, feed: FlycastFeed) -> None:
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(feed.model_dump(mode="json"), f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.cache_path)
