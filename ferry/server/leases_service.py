"""Machine leases on the control plane: the thin adapter around ``ferry.model.lease``.

Each method reads the machine and its stored lease, asks the pure decision
with the plane's clock, and writes with compare-and-set on the lease version
(a lost race is retried a bounded number of times, then answered 409).
Leases are rows in the store, so they survive a restart of the server.

``require`` is what the lifecycle routes call before they act: it checks the
request's nonce against the live lease. The check and the action are two
steps; a lease taken between them is a race Fly's API has as well (the
holder's next request carries its nonce and proceeds).
"""

from __future__ import annotations

import secrets

from ferry.errors import ConflictError, NotFoundError, RevisionConflict
from ferry.errors import ValidationError as FerryValidationError
from ferry.model import MachineState
from ferry.model.lease import (
    DEFAULT_LEASE_TTL,
    MAX_LEASE_TTL,
    MachineLease,
    check_nonce,
    live_lease,
    plan_acquire,
    plan_release,
)
from ferry.server.clock import Clock
from ferry.server.ids import new_ulid
from ferry.server.machines_service import MachineService, make_event
from ferry.store import StateStore

__all__ = ["LeaseService", "lease_ttl"]

_TRIES = 3
#: Who holds a lease: Ferry has one admin token, so every lease is the admin's.
OWNER = "admin"


def lease_ttl(value: int | str | None) -> int:
    """The lease TTL in seconds from a body or query value; ``ValidationError`` names it."""
    if value is None or value == "":
        return DEFAULT_LEASE_TTL
    try:
        ttl = int(value)
    except (TypeError, ValueError):
        raise FerryValidationError(
            f"lease ttl {value!r} is not a whole number of seconds",
            hint=f"give ttl between 1 and {MAX_LEASE_TTL}",
        ) from None
    if not 1 <= ttl <= MAX_LEASE_TTL:
        raise FerryValidationError(
            f"lease ttl {ttl} is out of range", hint=f"give ttl between 1 and {MAX_LEASE_TTL}"
        )
    return ttl


class LeaseService:
    """Acquire, refresh, show and release leases; check nonces. Every method blocks."""

    def __init__(self, store: StateStore, clock: Clock, machines: MachineService) -> None:
        self.store = store
        self.clock = clock
        self.machines = machines

    def get(self, app_name: str, machine_id: str) -> MachineLease:
        """The live lease; ``NotFoundError`` when there is none (never taken, released, expired)."""
        machine = self.machines.get(app_name, machine_id)
        live = live_lease(self.store.get_lease(machine.id), self.clock.now())
        if live is None:
            raise NotFoundError(
                f"machine {machine.id} has no lease", hint="acquire one with POST …/lease"
            )
        return live

    def acquire(
        self,
        app_name: str,
        machine_id: str,
        *,
        nonce: str | None,
        ttl: int,
        description: str | None,
        owner: str = OWNER,
    ) -> MachineLease:
        """A new lease held by ``owner``, or the caller's live lease refreshed (same nonce,
        new expiry).

        Raises ``LeaseHeld`` (409) when another holder has it, ``LeaseGone``
        (412) for a nonce that matches no live lease, ``ConflictError`` for a
        destroyed machine.
        """
        for attempt in range(_TRIES):
            machine = self.machines.get(app_name, machine_id)
            if machine.state is MachineState.DESTROYED:
                raise ConflictError(
                    f"machine {machine.id} is destroyed; it cannot be leased",
                    hint="create a new machine",
                )
            stored = self.store.get_lease(machine.id)
            lease = plan_acquire(
                machine.id,
                stored,
                nonce,
                ttl=ttl,
                description=description,
                owner=owner,
                now=self.clock.now(),
                new_nonce=secrets.token_hex(16),
                new_version=new_ulid(),
            )
            try:
                expected = stored.version if stored is not None else None
                self.store.put_lease(machine.id, lease, expected=expected)
            except RevisionConflict:
                if attempt == _TRIES - 1:
                    raise
                continue
            status = "refreshed" if stored is not None and stored.nonce == lease.nonce else "held"
            self.store.append_event(
                machine.id,
                make_event(self.clock, "lease", status, "user", expires_at=lease.expires_at),
            )
            return lease
        raise AssertionError("unreachable")  # pragma: no cover

    def release(self, app_name: str, machine_id: str, *, nonce: str | None) -> None:
        """Give up the live lease; the nonce must be its own (400 without, 409/412 wrong)."""
        machine = self.machines.get(app_name, machine_id)
        stored = self.store.get_lease(machine.id)
        plan_release(machine.id, stored, nonce, self.clock.now())
        assert stored is not None  # plan_release passed: a live lease exists
        self.store.delete_lease(machine.id, expected=stored.version)
        self.store.append_event(machine.id, make_event(self.clock, "lease", "released", "user"))

    def require(self, app_name: str, machine_id: str, nonce: str | None) -> None:
        """Allow a change to the machine under its lease, or raise ``LeaseHeld``/``LeaseGone``.

        Also raises ``NotFoundError`` for an unknown app or machine.
        """
        machine = self.machines.get(app_name, machine_id)
        check_nonce(machine.id, self.store.get_lease(machine.id), nonce, self.clock.now())
