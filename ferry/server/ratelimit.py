"""Per-token rate limits: a token bucket per key, pure over an injected clock.

A bucket holds up to ``burst`` requests and refills at ``rate`` per second.
``RateLimiter.take(key)`` spends one request from ``key``'s bucket or says
how long to wait until one is there again. No I/O and no threads of its own;
``take`` is safe from several threads (one lock, held for a few arithmetic
operations).

The control plane keys buckets by token id (``ferry.server.auth``); the
limits themselves come from ``ferry server --rate-limit/--rate-burst`` and
``--infra-rate-limit/--infra-rate-burst`` (see docs/credentials-and-limits.md).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimit", "RateLimiter", "TokenBucket", "retry_after_header"]

#: Buckets kept before full, idle ones are dropped (a full bucket is the same as none).
MAX_BUCKETS = 10_000
#: Float refills land a hair short of whole tokens; this much short still counts as one.
_SLIVER = 1e-9


@dataclass(frozen=True)
class RateLimit:
    """``rate`` requests per second on average, ``burst`` at once. ``rate`` 0: unlimited."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate < 0 or not math.isfinite(self.rate):
            raise ValueError(f"rate must be a finite number >= 0, not {self.rate}")
        if self.rate > 0 and self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst}")

    @property
    def unlimited(self) -> bool:
        return self.rate == 0


class TokenBucket:
    """One bucket: ``burst`` tokens at most, ``rate`` tokens back per second."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.rate = limit.rate
        self.burst = float(limit.burst)
        self.tokens = self.burst
        self.updated = now

    def take(self, now: float) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until one is back.

        A refused request spends nothing. A clock that goes backwards refills nothing.
        """
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        if self.tokens >= 1.0 - _SLIVER:
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        """True when the bucket would be full at ``now`` (forgetting it changes nothing)."""
        return self.tokens + max(0.0, now - self.updated) * self.rate >= self.burst


class RateLimiter:
    """Token buckets by key, created on first use with the limit the caller names."""

    def __init__(self, clock: Callable[[], float], max_buckets: int = MAX_BUCKETS) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._max = max_buckets
        self._lock = threading.Lock()

    def take(self, key: str, limit: RateLimit) -> float:
        """Spend one request of ``key`` under ``limit``: 0.0 if allowed, else seconds to wait.

        The bucket's limit is the one given when it was made; unlimited never waits.
        """
        if limit.unlimited:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max:
                    self._forget_full(now)
                bucket = self._buckets[key] = TokenBucket(limit, now)
            return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that are full again; if none is, the oldest half (bounded memory)."""
        full = [key for key, bucket in self._buckets.items() if bucket.full(now)]
        if not full:
            by_age = sorted(self._buckets, key=lambda key: self._buckets[key].updated)
            full = by_age[: max(1, len(by_age) // 2)]
        for key in full:
            del self._buckets[key]


def retry_after_header(seconds: float) -> str:
    """The ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
