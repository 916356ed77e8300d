"""``EdgeTls`` to and from JSON: the body of ``GET /v1/edges/{region}/tls`` and the
edge's state file. Carries private keys: only edges read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ferry.tls.bundle import CertBundle, EdgeTls

__all__ = ["edge_tls_from_json", "edge_tls_to_json"]


def _bundle_json(bundle: CertBundle) -> dict[str, Any]:
    return {
        "hostnames": list(bundle.hostnames),
        "chain_pem": bundle.chain_pem.decode(),
        "key_pem": bundle.key_pem.decode(),
        "not_after": bundle.not_after.isoformat(),
    }


def _bundle(data: dict[str, Any]) -> CertBundle:
    return CertBundle(
        hostnames=tuple(str(h) for h in data["hostnames"]),
        chain_pem=str(data["chain_pem"]).encode(),
        key_pem=str(data["key_pem"]).encode(),
        not_after=datetime.fromisoformat(str(data["not_after"])),
    )


def edge_tls_to_json(tls: EdgeTls) -> dict[str, Any]:
    return {
        "version": tls.version,
        "certificates": {h: _bundle_json(b) for h, b in sorted(tls.certificates.items())},
        "http01": dict(tls.http01),
        "alpn01": {h: _bundle_json(b) for h, b in sorted(tls.alpn01.items())},
        "dns01": {n: list(v) for n, v in sorted(tls.dns01.items())},
        "apps": dict(sorted(tls.apps.items())),
    }


def edge_tls_from_json(data: Any) -> EdgeTls:
    """Raises ``ValueError``/``KeyError``/``TypeError`` for a malformed document."""
    if not isinstance(data, dict):
        raise TypeError("an EdgeTls document is a JSON object")
    return EdgeTls(
        version=int(data["version"]),
        certificates={str(h): _bundle(b) for h, b in data.get("certificates", {}).items()},
        http01={str(t): str(k) for t, k in data.get("http01", {}).items()},
        alpn01={str(h): _bundle(b) for h, b in data.get("alpn01", {}).items()},
        dns01={str(n): tuple(str(v) for v in vs) for n, vs in data.get("dns01", {}).items()},
        apps={str(h): str(a) for h, a in data.get("apps", {}).items()},
    )
