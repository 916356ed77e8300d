"""Machine leases as Fly's clients hold them: the pure decisions, with an explicit ``now``.

A lease gives one holder exclusive rights to change a machine for ``ttl``
seconds. The holder proves itself with the lease's ``nonce`` in the
``fly-machine-lease-nonce`` header; flyctl takes a 13 s lease before it
updates a machine and refreshes it while it works. The shape is fly-go's
``MachineLeaseData`` (``expires_at`` in Unix seconds).

Rules (every function here is pure and raises instead of returning a flag):

- A lease is live while ``now < expires_at``; an expired lease is as good as
  none, and anyone may acquire a new one.
- While a lease is live, a change without its nonce is refused (409, naming
  the holder and the expiry); with a different nonce also 409.
- A nonce sent when no lease is live (released, expired, never taken) is
  refused with 412: the caller believes it holds a lease it does not.
- Acquiring with the live lease's nonce refreshes it: same nonce, new
  expiry, new ``version``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from ferry.errors import ConflictError, ValidationError

__all__ = [
    "DEFAULT_LEASE_TTL",
    "MAX_LEASE_TTL",
    "NONCE_HEADER",
    "LeaseGone",
    "LeaseHeld",
    "MachineLease",
    "check_nonce",
    "live_lease",
    "plan_acquire",
    "plan_release",
]

NONCE_HEADER: Final = "fly-machine-lease-nonce"
DEFAULT_LEASE_TTL: Final = 30
MAX_LEASE_TTL: Final = 3600


class LeaseHeld(ConflictError):
    """Another holder has a live lease on the machine (HTTP 409)."""


class LeaseGone(ValidationError):
    """A nonce was sent but no live lease has it: released, expired or never taken (HTTP 412)."""

    status = 412


class MachineLease(BaseModel):
    """fly-go's ``MachineLeaseData``: who holds the machine, with which nonce, until when."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    nonce: str
    expires_at: int = Field(description="Unix seconds; the lease is live while now < expires_at")
    owner: str = ""
    description: str = ""
    version: str = ""

    def is_live(self, now: datetime) -> bool:
        return now.timestamp() < self.expires_at

    def describe(self) -> str:
        """``"held by admin (fly deploy) until 2026-01-01T00:00:30Z"``."""
        what = f" ({self.description})" if self.description else ""
        until = datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"held by {self.owner or 'someone'}{what} until {until}"


def live_lease(lease: MachineLease | None, now: datetime) -> MachineLease | None:
    """``lease`` if it is still live at ``now``, else ``None``."""
    return lease if lease is not None and lease.is_live(now) else None


def check_nonce(
    machine_id: str, lease: MachineLease | None, nonce: str | None, now: datetime
) -> None:
    """Allow a change to the machine or raise ``LeaseHeld`` / ``LeaseGone``.

    ``nonce`` is the request's ``fly-machine-lease-nonce`` (``None`` or empty:
    not sent). No live lease and no nonce: allowed.
    """
    live = live_lease(lease, now)
    nonce = nonce or None
    if live is None:
        if nonce is not None:
            raise _gone(machine_id, lease, now)
        return
    if nonce is None:
        raise LeaseHeld(
            f"machine {machine_id} has a lease {live.describe()}",
            hint=f"send its nonce in the {NONCE_HEADER} header, or wait for it to be released",
        )
    if nonce != live.nonce:
        raise LeaseHeld(
            f"the {NONCE_HEADER} sent does not match the lease on machine {machine_id}, "
            f"{live.describe()}",
            hint="use the nonce you got when you acquired the lease",
        )


def plan_acquire(
    machine_id: str,
    lease: MachineLease | None,
    nonce: str | None,
    *,
    ttl: int,
    description: str | None,
    owner: str,
    now: datetime,
    new_nonce: str,
    new_version: str,
) -> MachineLease:
    """The lease after a ``POST …/lease``: a new one, or the live one refreshed.

    Without a nonce: a new lease (``new_nonce``) unless one is live (``LeaseHeld``).
    With the live lease's nonce: that lease with a new expiry (and description
    if given). Any other nonce raises as ``check_nonce`` does.
    """
    check_nonce(machine_id, lease, nonce, now)
    expires_at = math.ceil(now.timestamp() + ttl)
    live = live_lease(lease, now)
    if live is not None:  # check_nonce passed with a nonce: a refresh
        return live.model_copy(
            update={
                "expires_at": expires_at,
                "version": new_version,
                "description": live.description if description is None else description,
            }
        )
    return MachineLease(
        nonce=new_nonce,
        expires_at=expires_at,
        owner=owner,
        description=description or "",
        version=new_version,
    )


def plan_release(
    machine_id: str, lease: MachineLease | None, nonce: str | None, now: datetime
) -> None:
    """Allow ``DELETE …/lease`` or raise: the nonce is required and must be the live lease's."""
    if not nonce:
        raise ValidationError(
            f"releasing the lease of machine {machine_id} needs its nonce",
            hint=f"send it in the {NONCE_HEADER} header",
        )
    check_nonce(machine_id, lease, nonce, now)


def _gone(machine_id: str, lease: MachineLease | None, now: datetime) -> LeaseGone:
    if lease is not None and not lease.is_live(now):
        ago = math.floor(now.timestamp() - lease.expires_at)
        message = f"the lease on machine {machine_id} expired {ago} s ago"
    else:
        message = f"machine {machine_id} has no lease, so the {NONCE_HEADER} sent matches none"
    return LeaseGone(message, hint="acquire a new lease, or send the request without a nonce")
