"""The calls about an app's certificates (the Machines API's certificates resource;
docs/certificates.md) and the edges' TLS feed.

Users' calls answer the server's JSON objects as dicts (hostname, status, expiry,
DNS requirements, check): they carry no key. ``watch_edge_tls`` is an edge's call
and carries private keys.
"""

from __future__ import annotations

from typing import Any

from ferry.client._agent import MAX_WATCH_SECONDS, WATCH_SLACK
from ferry.client._http import HttpCore
from ferry.client._parse import path_segment as _seg
from ferry.errors import UnavailableError
from ferry.tls.bundle import EdgeTls
from ferry.tls.certs_wire import edge_tls_from_json

#: A check may place an ACME order and wait for it.
CHECK_TIMEOUT_SECONDS = 120.0


class CertsMethods(HttpCore):
    """Certificates endpoints. Every method blocks; errors as in ``HttpCore`` (400 for a
    bad host name, 404 for an unknown app or host name, 409 for a taken one)."""

    def _certs(self, app: str) -> str:
        return f"/v1/apps/{_seg(app)}/certificates"

    def add_certificate(self, app: str, hostname: str) -> dict[str, Any]:
        """Add ``hostname`` to ``app``; the certificate is ordered in the background."""
        data = self._request("POST", self._certs(app) + "/acme", body={"hostname": hostname})
        return dict(data)

    def list_certificates(self, app: str) -> list[dict[str, Any]]:
        data = self._request("GET", self._certs(app))
        return [dict(c) for c in data.get("certificates", [])]

    def get_certificate(self, app: str, hostname: str) -> dict[str, Any]:
        return dict(self._request("GET", f"{self._certs(app)}/{_seg(hostname)}"))

    def check_certificate(self, app: str, hostname: str) -> dict[str, Any]:
        """Re-check DNS and the order now; ``["check"]["reason"]`` says why (not) ready."""
        path = f"{self._certs(app)}/{_seg(hostname)}/check"
        return dict(self._request("POST", path, timeout=CHECK_TIMEOUT_SECONDS))

    def remove_certificate(self, app: str, hostname: str) -> None:
        self._request("DELETE", f"{self._certs(app)}/{_seg(hostname)}")

    def watch_edge_tls(self, region: str, since: int = 0, timeout: float = 30) -> EdgeTls:
        """The edges' TLS snapshot once it moved past ``since`` (long-poll; an edge's
        credential only). Raises ``UnavailableError`` for an answer that is no snapshot."""
        seconds = max(0, min(MAX_WATCH_SECONDS, round(timeout)))
        data = self._request(
            "GET",
            f"/v1/edges/{_seg(region)}/tls",
            params={"since": since, "timeout": seconds},
            timeout=seconds + WATCH_SLACK,
        )
        try:
            return edge_tls_from_json(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise UnavailableError(f"the Ferry API sent an unreadable TLS snapshot: {exc}") from exc
