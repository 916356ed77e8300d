"""The proxy's copy of the routing table: followed from the control plane, kept on disk.

Static stability: at start the proxy loads the table it last saw from disk,
so it routes at once even when the control plane is down; while the control
plane is unreachable it keeps routing with what it knows (its own health
checks still take dead machines out); when it returns, the watch catches up.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from ferry.errors import FerryError
from ferry.model import Machine
from ferry.proxy.routes import Lan, RouteTable, routes_from_machines

log = logging.getLogger(__name__)

WATCH_TIMEOUT = 25.0
RETRY_SECONDS = 1.0


class RouteSource(Protocol):
    """The one call the watcher makes (``FerryClient.watch_routes``)."""

    def watch_routes(self, since: int = 0, timeout: float = 30) -> tuple[int, list[Machine]]: ...


class RouteWatcher:
    """Holds the current ``RouteTable``; ``current()`` is a cheap read for the hot path."""

    def __init__(self, source: RouteSource, cache_path: Path, lan: Lan = None) -> None:
        self.source = source
        self.cache_path = cache_path
        self.lan = lan
        self._table = RouteTable()
        self.connected = False

    def current(self) -> RouteTable:
        return self._table

    def load_cached(self) -> RouteTable:
        """Load the table saved by an earlier run, if any (a corrupt file is ignored)."""
        try:
            data = json.loads(self.cache_path.read_text())
            machines = [Machine.model_validate(m) for m in data["machines"]]
            self._table = routes_from_machines(int(data["resource_version"]), machines, self.lan)
            log.info("loaded routing table v%d from %s", self._table.version, self.cache_path)
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable routing cache %s: %s", self.cache_path, exc)
        return self._table

    def poll_once(self, timeout: float = WATCH_TIMEOUT) -> bool:
        """One long-poll; True if the table changed. Raises ``FerryError`` when unreachable."""
        since = self._table.version if self.connected else 0
        version, machines = self.source.watch_routes(since=since, timeout=timeout)
        self.connected = True
        if version == self._table.version and since != 0:
            return False
        table = routes_from_machines(version, machines, self.lan)
        changed = table != self._table
        self._table = table
        if changed:
            self._save(version, machines)
        return changed

    def run(self, stop: threading.Event) -> None:
        """Follow the control plane until ``stop`` is set; never raises."""
        while not stop.is_set():
            try:
                if self.poll_once():
                    log.info(
                        "routing table v%d: %d apps, %d machines",
                        self._table.version,
                        len(self._table.apps),
                        sum(len(b) for b in self._table.apps.values()),
                    )
            except FerryError as exc:
                if self.connected:
                    log.warning(
                        "control plane unreachable (%s): routing with table v%d",
                        exc,
                        self._table.version,
                    )
                self.connected = False
                stop.wait(RETRY_SECONDS)

    def _save(self, version: int, machines: list[Machine]) -> None:
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_suffix(".tmp")
        payload = {
            "resource_version": version,
            "machines": [m.model_dump(mode="json") for m in machines],
        }
        with tmp.open("w") as f:
            json.dump(payload, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.cache_path)
