"""What an edge needs to terminate TLS: certificates with their keys, and ACME challenges.

These are the shapes the control plane hands to every edge (and the edge
keeps on disk, so it can serve HTTPS while the control plane is down). They
carry private keys: never log them, never put them in API output for users.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


def wildcard_parent(hostname: str) -> str | None:
    """The ``*.`` name one label up that covers ``hostname`` (``*.example.com`` for
    ``www.example.com``); None where no wildcard may cover it (a top-level domain)."""
    label, dot, parent = hostname.partition(".")
    return "*." + parent if label and dot and "." in parent else None


@dataclass(frozen=True)
class CertBundle:
    """One certificate the edge can present.

    ``hostnames``: the names it covers as the edge matches SNI (exact names,
    or ``*.example.com`` for one label under ``example.com``).
    ``chain_pem``: the leaf first, then intermediates, PEM. ``key_pem``: its
    private key, PEM (unencrypted; only ever in an edge's memory or its 0600
    state file). ``not_after``: the leaf's expiry, UTC.
    """

    hostnames: tuple[str, ...]
    chain_pem: bytes
    key_pem: bytes
    not_after: datetime

    def __repr__(self) -> str:  # keys must never reach a log line
        return f"CertBundle(hostnames={self.hostnames!r}, not_after={self.not_after.isoformat()})"


@dataclass(frozen=True)
class EdgeTls:
    """An immutable snapshot of everything TLS an edge serves, at ``version``.

    ``certificates``: hostname (exact or ``*.`` wildcard) -> the bundle to
    present for it. ``http01``: ACME HTTP-01 token -> key authorization, for
    ``/.well-known/acme-challenge/<token>`` on port 80. ``alpn01``: hostname ->
    the self-signed challenge certificate to present to a client offering
    ALPN ``acme-tls/1`` (TLS-ALPN-01, RFC 8737). ``dns01``: a name such as
    ``_acme-challenge.example.com`` -> the TXT values the cluster's DNS
    answers for it (DNS-01, for wildcard certificates). ``apps``: custom host name
    (exact or ``*.`` wildcard) -> the app that serves it (``app_for``).
    """

    version: int = 0
    certificates: Mapping[str, CertBundle] = field(default_factory=dict)
    http01: Mapping[str, str] = field(default_factory=dict)
    alpn01: Mapping[str, CertBundle] = field(default_factory=dict)
    dns01: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    apps: Mapping[str, str] = field(default_factory=dict)

    def app_for(self, hostname: str) -> str | None:
        """The app serving the custom ``hostname`` (lowercase, no port): an exact name
        first, else a wildcard one label up; ``None`` when no app has it."""
        key = wildcard_parent(hostname)
        return self.apps.get(hostname) or (self.apps.get(key) if key else None)

    def __repr__(self) -> str:
        return (
            f"EdgeTls(version={self.version}, certificates={sorted(self.certificates)!r}, "
            f"http01={len(self.http01)}, alpn01={sorted(self.alpn01)!r})"
        )
