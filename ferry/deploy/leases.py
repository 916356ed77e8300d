"""The leases a deploy holds on the machines it changes, as flyctl holds them.

flyctl takes a 13 s lease on every existing machine it will update or retire
before its first change, sends the lease's nonce with each change, refreshes
the leases every few seconds while it works, and releases them at the end.
So two deploys of one app cannot interleave: the second finds the machines
leased and stops before it changes anything, and a deploy that dies leaves
leases that lapse 13 s later.

``DeployLeases`` does that for a ``Rollout``: ``acquire`` (all or none),
``nonce`` for each change, a background refresh (one daemon thread, stopped
by ``release``). Machines the deploy creates are not leased: nobody else
knows them yet.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from typing import Protocol

from ferry.errors import ApiError, FerryError
from ferry.model.lease import MachineLease

__all__ = ["LEASE_DESCRIPTION", "LEASE_REFRESH_SECONDS", "LEASE_TTL", "DeployLeases"]

#: flyctl's lease length during a deploy, and how often it refreshes one.
LEASE_TTL = 13
LEASE_REFRESH_SECONDS = 4.0
LEASE_DESCRIPTION = "ferry deploy"


class LeaseClient(Protocol):
    """The slice of ``FerryClient`` the leases use."""

    def acquire_lease(
        self,
        app: str,
        machine_id: str,
        *,
        ttl: int | None = None,
        description: str | None = None,
        nonce: str | None = None,
    ) -> MachineLease: ...

    def release_lease(self, app: str, machine_id: str, nonce: str) -> None: ...


class DeployLeases:
    """Leases on one app's machines for the length of a deploy. Thread-safe."""

    def __init__(
        self,
        client: LeaseClient,
        app: str,
        *,
        ttl: int = LEASE_TTL,
        every: float = LEASE_REFRESH_SECONDS,
    ) -> None:
        self._client = client
        self._app = app
        self._ttl = ttl
        self._every = every
        self._nonces: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, machine_ids: Iterable[str]) -> tuple[str, str] | None:
        """Lease every machine, then start refreshing; ``None``, or (the machine that could
        not be leased, a sentence why) after releasing every lease taken."""
        for machine_id in machine_ids:
            try:
                lease = self._client.acquire_lease(
                    self._app, machine_id, ttl=self._ttl, description=LEASE_DESCRIPTION
                )
            except FerryError as exc:
                self.release()  # all or none, also when the API is gone
                if not isinstance(exc, ApiError):
                    raise
                return machine_id, f"could not lease {machine_id}: {exc.message}"
            with self._lock:
                self._nonces[machine_id] = lease.nonce
        self._thread = threading.Thread(target=self._refresh_loop, name="lease-refresh")
        self._thread.daemon = True  # never keeps the CLI alive; release() stops it first
        self._thread.start()
        return None

    def nonce(self, machine_id: str) -> str | None:
        """The nonce to send with a change of ``machine_id`` (``None``: not leased)."""
        with self._lock:
            return self._nonces.get(machine_id)

    def refresh(self) -> None:
        """Extend every lease by ``ttl``. A lease the API refuses to refresh (the machine was
        destroyed, or the lease lapsed) is dropped: a change sent under it says why. An API
        that cannot be reached is tried again at the next round."""
        with self._lock:
            held = dict(self._nonces)
        for machine_id, nonce in held.items():
            if self._stop.is_set():
                return
            try:
                self._client.acquire_lease(self._app, machine_id, ttl=self._ttl, nonce=nonce)
            except ApiError:
                with self._lock:
                    self._nonces.pop(machine_id, None)
            except FerryError:
                return

    def release(self) -> None:
        """Stop refreshing and release every lease still held; best effort, idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._every + 30)  # one refresh round at most
            self._thread = None
        with self._lock:
            held, self._nonces = self._nonces, {}
        for machine_id, nonce in held.items():
            # A lease destroyed with its machine, or lapsed, leaves nothing to release.
            with contextlib.suppress(FerryError):
                self._client.release_lease(self._app, machine_id, nonce)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self._every):
            self.refresh()
