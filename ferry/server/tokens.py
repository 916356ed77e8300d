"""API tokens as strings: minted, split and digested. No storage, no I/O.

A token reads ``fo1_<id>_<secret>``: the id finds the stored row, the secret
is compared by its SHA-256 digest (the store never holds it). Secrets are 32
random bytes, so a plain digest is enough: there is nothing to brute-force.
The ``Authorization`` header may say ``Bearer <token>`` or, as flyctl sends
its tokens, ``FlyV1 <token>``.
"""

from __future__ import annotations

import hashlib
import re
import secrets

__all__ = ["digest", "from_authorization", "mint", "split"]

PREFIX = "fo1_"
_SHAPE = re.compile(r"^fo1_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_SCHEMES = ("bearer", "flyv1")


def mint() -> tuple[str, str]:
    """A new token: ``(id, plain)``. The plain value is shown once, then forgotten."""
    token_id = secrets.token_hex(8)
    return token_id, f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def split(plain: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, else ``None``."""
    match = _SHAPE.match(plain)
    return None if match is None else (match.group(1), match.group(2))


def digest(secret: str) -> str:
    """The SHA-256 hex digest the store keeps instead of ``secret``."""
    return hashlib.sha256(secret.encode()).hexdigest()


def from_authorization(header: str | None) -> str | None:
    """The token of an ``Authorization`` header (``Bearer`` or ``FlyV1``), else ``None``."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() not in _SCHEMES:
        return None
    return value.strip() or None
