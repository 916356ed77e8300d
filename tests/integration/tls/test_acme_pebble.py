"""The full ACME flow against a real Pebble, answered by a real edge (docs/certificates.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from .acme_world import AcmeWorld, wait_for


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AcmeWorld]:
    w = AcmeWorld(tmp_path)
    try:
        yield w
    finally:
        w.close()


def _leaf(chain_pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(chain_pem)[0]


def test_http01_certificate_is_issued_and_reaches_the_edge(world: AcmeWorld) -> None:
    added = world.admin.add_certificate("web", "www.example.test")
    assert added["configured"] is False
    assert added["client_status"] == "Awaiting certificates"
    cert = world.issued("www.example.test")
    assert cert["client_status"] == "Ready"
    assert cert["issued"][0]["expires_at"]
    assert world.edge is not None
    bundle = wait_for(
        "the edge has the certificate",
        lambda: world.edge.feed.current().certificates.get("www.example.test"),  # type: ignore[union-attr]
    )
    names = _leaf(bundle.chain_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == ["www.example.test"]
    assert b"PRIVATE KEY" in bundle.key_pem
    assert "key" not in str(cert).lower().replace("acme", "")  # the user's view has no key
    # an unknown token goes on to routing as before (no app at this host: 404)
    answer = httpx.get(
        f"http://127.0.0.1:{world.http_port}/.well-known/acme-challenge/nope",
        headers={"Host": "www.example.test"},
    )
    assert answer.status_code == 404
