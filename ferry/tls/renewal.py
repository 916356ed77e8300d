"""What to do for each certificate now: pure decisions from a snapshot and ``now``.

Level-triggered: every cycle of the control plane's certificate loop reads a
fresh snapshot, asks ``plan_certificates`` and acts on the decisions; each
carries a one-line reason that the loop logs and ``ferry certs check`` shows.

- no certificate yet: ``order`` (unless waiting out a backoff, or given up);
- issued: ``wait`` until one third of its lifetime is left, then ``renew``
  (Let's Encrypt's advice: renew at 30 days of 90); the old certificate stays
  in use until a new one is issued, whatever happens to the renewal;
- after a failure: retry with exponential backoff (``RenewalPolicy``);
- a certificate never issued gives up after ``give_up_after`` failures (the
  user's ``ferry certs check`` starts again); an issued one is retried until
  it expires, at the backoff's ceiling, since serving it is still worth it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = [
    "Action",
    "CertState",
    "Decision",
    "RenewalPolicy",
    "decide",
    "plan_certificates",
    "retry_at",
]


class Action(StrEnum):
    ORDER = "order"  # obtain a first certificate
    RENEW = "renew"  # obtain a new one while the current one is still served
    WAIT = "wait"  # nothing to do now
    GIVE_UP = "give_up"  # stop trying until the user asks again (``certs check``)


@dataclass(frozen=True)
class RenewalPolicy:
    """When to renew and how to back off. ``renew_fraction``: renew when this much of
    the lifetime is left. Backoff after the n-th failure: ``min(base * 2**(n-1), cap)``."""

    renew_fraction: float = 1 / 3
    backoff_base: timedelta = timedelta(seconds=30)
    backoff_cap: timedelta = timedelta(hours=6)
    give_up_after: int = 8


@dataclass(frozen=True)
class CertState:
    """What the decision needs of one certificate (a snapshot; no keys)."""

    hostname: str
    status: str  # pending | issued | failed
    not_before: datetime | None = None
    not_after: datetime | None = None
    failures: int = 0
    next_attempt: datetime | None = None
    last_error: str = ""


@dataclass(frozen=True)
class Decision:
    hostname: str
    action: Action
    reason: str


def retry_at(failures: int, now: datetime, policy: RenewalPolicy) -> datetime:
    """When to try again after the ``failures``-th failure in a row (``failures >= 1``)."""
    delay: timedelta = policy.backoff_base * int(2 ** max(failures - 1, 0))
    return now + min(delay, policy.backoff_cap)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def renew_at(cert: CertState, policy: RenewalPolicy) -> datetime | None:
    """The moment renewal starts for an issued certificate, else ``None``."""
    if cert.not_after is None or cert.not_before is None:
        return None
    lifetime = cert.not_after - cert.not_before
    return cert.not_after - lifetime * policy.renew_fraction


def decide(cert: CertState, now: datetime, policy: RenewalPolicy) -> Decision:
    """The action for one certificate at ``now``, with its reason."""
    name = cert.hostname
    failed = f" after {cert.failures} failure{'s' if cert.failures != 1 else ''}"
    last = f": {cert.last_error}" if cert.last_error else ""
    backing_off = cert.failures > 0 and cert.next_attempt is not None and now < cert.next_attempt
    if cert.status == "failed":
        return Decision(name, Action.WAIT, f"{name}: gave up{failed}{last}; run `certs check`")
    if cert.status != "issued" or cert.not_after is None:
        if cert.failures >= policy.give_up_after:
            return Decision(name, Action.GIVE_UP, f"{name}: giving up{failed}{last}")
        if backing_off:
            assert cert.next_attempt is not None
            return Decision(
                name, Action.WAIT, f"{name}: retrying at {_when(cert.next_attempt)}{failed}{last}"
            )
        return Decision(name, Action.ORDER, f"{name}: no certificate yet, ordering one")
    start = renew_at(cert, policy)
    assert start is not None
    if now >= cert.not_after:
        state = f"expired at {_when(cert.not_after)}"
    else:
        state = f"valid until {_when(cert.not_after)}"
    if now < start:
        return Decision(name, Action.WAIT, f"{name}: {state}, renews from {_when(start)}")
    if backing_off:
        assert cert.next_attempt is not None
        return Decision(
            name,
            Action.WAIT,
            f"{name}: {state}, renewal retrying at {_when(cert.next_attempt)}{failed}{last}",
        )
    return Decision(name, Action.RENEW, f"{name}: {state}, renewing")


def plan_certificates(
    certs: Sequence[CertState], now: datetime, policy: RenewalPolicy | None = None
) -> list[Decision]:
    """A decision per certificate, in the snapshot's order."""
    policy = policy or RenewalPolicy()
    return [decide(cert, now, policy) for cert in certs]
