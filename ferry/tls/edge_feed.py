"""The edge's copy of its TLS snapshot: followed from the control plane, kept on disk.

Static stability, as for the routing table (``ferry.proxy.watch``): at start the
edge loads the snapshot it last saw from its state file, so an edge restarted
while the control plane is down still serves its certificates; while the control
plane is unreachable it keeps what it has; when it returns, the long-poll catches
up. The file holds private keys: it is written 0600 (atomically, fsynced) and
never logged. ``current()`` is a cheap read for the hot path.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from ferry.errors import FerryError
from ferry.tls.bundle import EdgeTls
from ferry.tls.certs_wire import edge_tls_from_json, edge_tls_to_json

__all__ = ["EdgeTlsFeed", "TlsSource"]

log = logging.getLogger(__name__)

WATCH_TIMEOUT = 25.0
RETRY_SECONDS = 1.0


class TlsSource(Protocol):
    """The one call the feed makes (``FerryClient.watch_edge_tls``)."""

    def watch_edge_tls(self, region: str, since: int = 0, timeout: float = 30) -> EdgeTls: ...


class EdgeTlsFeed:
    """Holds the current ``EdgeTls``. ``run`` in a thread; ``current`` from anywhere."""

    def __init__(self, source: TlsSource, region: str, state_path: Path) -> None:
        self.source = source
        self.region = region
        self.state_path = state_path
        self._tls = EdgeTls()
        self.connected = False

    def current(self) -> EdgeTls:
        return self._tls

    def load_cached(self) -> EdgeTls:
        """Load the snapshot saved by an earlier run, if any (an unreadable one is ignored)."""
        try:
            self._tls = edge_tls_from_json(json.loads(self.state_path.read_text()))
            log.info(
                "loaded TLS snapshot v%d (%d certificates) from %s",
                self._tls.version,
                len(self._tls.certificates),
                self.state_path,
            )
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable TLS state %s: %s", self.state_path, exc)
        return self._tls

    def poll_once(self, timeout: float = WATCH_TIMEOUT) -> bool:
        """One long-poll; True if the snapshot changed. Raises ``FerryError`` when the
        control plane cannot be reached (the snapshot is kept)."""
        since = self._tls.version if self.connected else 0
        tls = self.source.watch_edge_tls(self.region, since=since, timeout=timeout)
        self.connected = True
        if tls == self._tls:
            return False
        self._tls = tls
        self._save(tls)
        return True

    def run(self, stop: threading.Event) -> None:
        """Follow the control plane until ``stop`` is set; never raises."""
        while not stop.is_set():
            try:
                if self.poll_once():
                    log.info("TLS snapshot: %r", self._tls)
            except FerryError as exc:
                if self.connected:
                    log.warning(
                        "control plane unreachable (%s): serving TLS snapshot v%d",
                        exc,
                        self._tls.version,
                    )
                self.connected = False
                stop.wait(RETRY_SECONDS)

    def _save(self, tls: EdgeTls) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)  # an older file may have had other bits
            json.dump(edge_tls_to_json(tls), f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.state_path)
