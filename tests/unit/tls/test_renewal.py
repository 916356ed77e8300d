"""The renewal decisions: what each certificate needs now, with the reason users see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ferry.tls.renewal import Action, CertState, RenewalPolicy, decide, plan_certificates, retry_at

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POLICY = RenewalPolicy(backoff_base=timedelta(seconds=30), backoff_cap=timedelta(hours=1))


def issued(days_left: float, lifetime_days: float = 90, **extra: object) -> CertState:
    not_after = NOW + timedelta(days=days_left)
    return CertState(
        "www.example.com",
        "issued",
        not_before=not_after - timedelta(days=lifetime_days),
        not_after=not_after,
        **extra,  # type: ignore[arg-type]
    )


def test_a_new_name_is_ordered() -> None:
    decision = decide(CertState("www.example.com", "pending"), NOW, POLICY)
    assert decision.action is Action.ORDER
    assert decision.reason == "www.example.com: no certificate yet, ordering one"


def test_an_issued_certificate_waits_until_a_third_of_its_lifetime_is_left() -> None:
    waiting = decide(issued(days_left=31), NOW, POLICY)
    assert waiting.action is Action.WAIT
    assert "renews from" in waiting.reason and "valid until" in waiting.reason
    assert decide(issued(days_left=29), NOW, POLICY).action is Action.RENEW


def test_a_failure_backs_off_exponentially_up_to_the_cap() -> None:
    assert retry_at(1, NOW, POLICY) == NOW + timedelta(seconds=30)
    assert retry_at(3, NOW, POLICY) == NOW + timedelta(seconds=120)
    assert retry_at(20, NOW, POLICY) == NOW + timedelta(hours=1)
    backing_off = CertState(
        "www.example.com", "pending", failures=2, next_attempt=NOW + timedelta(seconds=10),
        last_error="the ACME CA at x cannot be reached",
    )  # fmt: skip
    decision = decide(backing_off, NOW, POLICY)
    assert decision.action is Action.WAIT
    assert "after 2 failures: the ACME CA at x cannot be reached" in decision.reason
    assert decide(backing_off, NOW + timedelta(seconds=11), POLICY).action is Action.ORDER


def test_a_failing_renewal_keeps_waiting_its_backoff_and_says_the_certificate_is_valid() -> None:
    cert = issued(days_left=10, failures=1, next_attempt=NOW + timedelta(minutes=1),
                  last_error="refused")  # fmt: skip
    decision = decide(cert, NOW, POLICY)
    assert decision.action is Action.WAIT
    assert "valid until" in decision.reason and "renewal retrying" in decision.reason


def test_an_expired_certificate_is_still_renewed_never_given_up() -> None:
    cert = issued(days_left=-1, failures=50, last_error="down")
    decision = decide(cert, NOW, POLICY)
    assert decision.action is Action.RENEW
    assert "expired at" in decision.reason


def test_a_name_never_issued_gives_up_after_the_limit_and_then_waits_for_the_user() -> None:
    cert = CertState("www.example.com", "pending", failures=POLICY.give_up_after,
                     last_error="rejectedIdentifier")  # fmt: skip
    decision = decide(cert, NOW, POLICY)
    assert decision.action is Action.GIVE_UP
    assert "rejectedIdentifier" in decision.reason
    given_up = CertState("www.example.com", "failed", failures=8, last_error="rejectedIdentifier")
    waiting = decide(given_up, NOW, POLICY)
    assert waiting.action is Action.WAIT and "certs check" in waiting.reason


def test_plan_keeps_the_snapshot_order() -> None:
    certs = [CertState("a.example.com", "pending"), issued(days_left=80)]
    assert [d.action for d in plan_certificates(certs, NOW, POLICY)] == [Action.ORDER, Action.WAIT]
