"""Names on the edge's hot path: the app a Host header names, and request ids.

``HostRouter`` maps ``Host`` to an app (cached, bounded); ``RequestIds``
makes Fly-style request ids (``<26 chars>-<region>``) with one bytes
concatenation per request.
"""

from __future__ import annotations

import os
import time

__all__ = ["HostRouter", "RequestIds"]


class HostRouter:
    """Host header -> app name: ``app.domain``, ``app.domain:port`` or bare ``app``.

    Results are cached (bounded); the cache is cleared when it grows past
    ``cache_size`` so a flood of random hosts costs memory only briefly.
    """

    def __init__(self, domain: str, *, cache_size: int = 4096) -> None:
        self._suffix = "." + domain.strip(".").lower() if domain.strip(".") else ""
        self._cache: dict[bytes, str | None] = {}
        self._cache_size = cache_size

    def app_for(self, host: bytes) -> str | None:
        """The app named by ``host``, or None when the host names no app of this domain."""
        cached = self._cache.get(host, 0)
        if cached != 0:
            return cached  # type: ignore[return-value]
        app = self._parse(host)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[host] = app
        return app

    def _parse(self, host: bytes) -> str | None:
        try:
            text = host.decode("ascii").strip().lower()
        except UnicodeDecodeError:
            return None
        if text.startswith("["):
            return None  # an IPv6 literal names no app
        name = text.rsplit(":", 1)[0] if ":" in text else text
        name = name.rstrip(".")
        if self._suffix and name.endswith(self._suffix):
            name = name[: -len(self._suffix)]
        if not name or "." in name:
            return None
        return name


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class RequestIds:
    """Request ids ``<26 chars>-<region>``, unique per process and increasing.

    A per-process prefix (start time in ms and 30 random bits, Crockford
    base32) followed by a counter: one bytes format per request, no clock.
    """

    def __init__(self, region: str) -> None:
        node = _base32(int.from_bytes(os.urandom(4), "big"), 6)
        self._prefix = (_base32(time.time_ns() // 1_000_000, 10) + node).encode()
        suffix = ("-" + region).encode()
        self._tails = tuple(b"%03X%b" % (low, suffix) for low in range(4096))
        self._head = self._prefix + b"%07X" % 0
        self._counter = 0

    def next(self) -> bytes:
        """A new id: one concatenation per request (the counter's 10 hex digits are a
        head of 7, re-formatted every 4096 ids, and a precomputed tail of 3)."""
        self._counter += 1
        low = self._counter & 0xFFF
        if low == 0:
            self._head = self._prefix + b"%07X" % (self._counter >> 12)
        return self._head + self._tails[low]
