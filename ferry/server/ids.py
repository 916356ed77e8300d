"""Identifiers in Fly's shapes: machine ids (14 hex chars) and ULID-like instance/event ids."""

from __future__ import annotations

import secrets
import threading
import time

__all__ = ["new_app_id", "new_machine_id", "new_ulid"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last = (0, 0)


def new_machine_id() -> str:
    """14 lowercase hex characters, like Fly's machine ids."""
    return secrets.token_hex(7)


def new_app_id() -> str:
    """An opaque app id (hex)."""
    return secrets.token_hex(8)


def new_ulid() -> str:
    """A 26-character ULID: sorts by creation time, strictly increasing within a process."""
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_random = _last
        if millis <= last_millis:
            millis, random_part = last_millis, last_random + 1
        else:
            random_part = secrets.randbits(80)
        _last = (millis, random_part)
    value = (millis << 80) | (random_part & ((1 << 80) - 1))
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
