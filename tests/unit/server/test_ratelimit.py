"""The token-bucket core with a clock the test moves: bursts, refill, waits, memory."""

from __future__ import annotations

import pytest

from ferry.server.ratelimit import RateLimit, RateLimiter, TokenBucket, retry_after_header


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_the_next_request_waits_for_one_refill() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(clock)
    limit = RateLimit(rate=10, burst=3)
    assert [limiter.take("t1", limit) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("t1", limit) == pytest.approx(0.1)
    clock.now += 0.05
    assert limiter.take("t1", limit) == pytest.approx(0.05)  # a refused request spends nothing
    clock.now += 0.05
    assert limiter.take("t1", limit) == 0.0
    assert limiter.take("t1", limit) == pytest.approx(0.1)


def test_tokens_have_their_own_buckets() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(clock)
    limit = RateLimit(rate=1, burst=1)
    assert limiter.take("a", limit) == 0.0
    assert limiter.take("a", limit) > 0
    assert limiter.take("b", limit) == 0.0


def test_refill_stops_at_the_burst_and_a_clock_going_back_refills_nothing() -> None:
    bucket = TokenBucket(RateLimit(rate=100, burst=2), now=0.0)
    assert bucket.take(1000.0) == 0.0  # long idle: still only 2
    assert bucket.take(1000.0) == 0.0
    assert bucket.take(1000.0) > 0
    assert bucket.take(999.0) > 0


def test_sustained_rate_matches_the_limit() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(clock)
    limit = RateLimit(rate=100, burst=200)
    allowed = 0
    for _ in range(10_000):  # 10 s at 1000 tries per second
        clock.now += 0.001
        allowed += limiter.take("t", limit) == 0.0
    assert 200 + 1000 - 2 <= allowed <= 200 + 1000 + 2


def test_a_zero_rate_is_no_limit_and_bad_limits_are_refused() -> None:
    limiter = RateLimiter(FakeMonotonic())
    assert all(limiter.take("t", RateLimit(0, 0)) == 0.0 for _ in range(1000))
    assert len(limiter) == 0
    with pytest.raises(ValueError, match="rate"):
        RateLimit(-1, 10)
    with pytest.raises(ValueError, match="burst"):
        RateLimit(5, 0)


def test_memory_is_bounded_and_full_buckets_go_first() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(clock, max_buckets=4)
    limit = RateLimit(rate=1, burst=2)
    for key in ("a", "b", "c", "d"):
        limiter.take(key, limit)
    clock.now += 10  # all full again
    limiter.take("e", limit)
    assert len(limiter) == 1
    for key in ("f", "g", "h", "i", "j"):
        limiter.take(key, limit)  # none full: the oldest half goes
    assert len(limiter) <= 4


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(1.2) == "2"
    assert retry_after_header(0.0) == "1"
