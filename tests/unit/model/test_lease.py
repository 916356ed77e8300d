"""The pure lease decisions: who may change a machine, and when a lease ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ferry.errors import ValidationError
from ferry.model.lease import (
    LeaseGone,
    LeaseHeld,
    MachineLease,
    check_nonce,
    live_lease,
    plan_acquire,
    plan_release,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = MachineLease(
    nonce="n1", expires_at=int(T0.timestamp()) + 13, owner="admin", description="fly deploy"
)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _acquire(lease: MachineLease | None, nonce: str | None, now: datetime) -> MachineLease:
    return plan_acquire(
        "m1",
        lease,
        nonce,
        ttl=13,
        description=None,
        owner="admin",
        now=now,
        new_nonce="fresh",
        new_version="v2",
    )


def test_a_lease_is_live_until_its_expiry_second() -> None:
    assert live_lease(LEASE, _at(12.999)) is LEASE
    assert live_lease(LEASE, _at(13)) is None
    assert live_lease(None, T0) is None


def test_without_a_lease_anyone_may_change_the_machine() -> None:
    check_nonce("m1", None, None, T0)
    check_nonce("m1", LEASE, None, _at(20))  # expired: as good as none


def test_a_live_lease_refuses_a_change_without_its_nonce_naming_holder_and_expiry() -> None:
    with pytest.raises(LeaseHeld) as caught:
        check_nonce("m1", LEASE, None, _at(1))
    assert caught.value.status == 409
    assert "held by admin (fly deploy) until 2026-01-01T00:00:13Z" in caught.value.message


def test_a_wrong_nonce_is_refused_while_the_lease_is_live() -> None:
    with pytest.raises(LeaseHeld, match="does not match"):
        check_nonce("m1", LEASE, "other", _at(1))
    check_nonce("m1", LEASE, "n1", _at(1))


def test_a_nonce_after_expiry_or_without_any_lease_is_412() -> None:
    with pytest.raises(LeaseGone, match="expired 7 s ago") as caught:
        check_nonce("m1", LEASE, "n1", _at(20))
    assert caught.value.status == 412
    with pytest.raises(LeaseGone, match="has no lease"):
        check_nonce("m1", None, "n1", T0)


def test_acquire_makes_a_new_lease_that_expires_after_ttl() -> None:
    lease = _acquire(None, None, _at(0.5))
    assert (lease.nonce, lease.owner, lease.version) == ("fresh", "admin", "v2")
    assert lease.expires_at == int(T0.timestamp()) + 14  # rounded up: never shorter than ttl


def test_acquire_over_an_expired_lease_takes_it_and_over_a_live_one_is_refused() -> None:
    assert _acquire(LEASE, None, _at(13)).nonce == "fresh"
    with pytest.raises(LeaseHeld):
        _acquire(LEASE, None, _at(5))


def test_refresh_with_the_nonce_keeps_it_and_moves_the_expiry() -> None:
    refreshed = _acquire(LEASE, "n1", _at(10))
    assert refreshed.nonce == "n1" and refreshed.description == "fly deploy"
    assert refreshed.expires_at == int(T0.timestamp()) + 23
    assert refreshed.version == "v2"


def test_release_needs_the_live_nonce() -> None:
    with pytest.raises(ValidationError, match="needs its nonce"):
        plan_release("m1", LEASE, None, _at(1))
    with pytest.raises(LeaseHeld):
        plan_release("m1", LEASE, "other", _at(1))
    with pytest.raises(LeaseGone):
        plan_release("m1", LEASE, "n1", _at(30))
    plan_release("m1", LEASE, "n1", _at(1))
