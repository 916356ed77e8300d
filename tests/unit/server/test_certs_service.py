"""The certificate service's own choices: which challenge it answers, what the edges get
for an order in flight (TLS-ALPN-01 certificate included), and the loop's reasons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from ferry.server.certs_service import CertService, CertSettings
from ferry.store.certs_base import CertUpdate
from ferry.tls.acme_client import ACME_IDENTIFIER_OID, AcmeOrder, IdentifierChallenges

from .conftest import Api, FakeClock, open_api


@pytest.fixture
def alpn_api(tmp_path: Path, clock: FakeClock) -> Iterator[Api]:
    settings = CertSettings(directory_url="https://127.0.0.1:9/dir", challenge="tls-alpn-01")
    yield from open_api(
        tmp_path / "state.db", clock, cert_settings=settings, run_certificates=False
    )


def _order(*idents: IdentifierChallenges) -> AcmeOrder:
    return AcmeOrder(tuple(i.hostname for i in idents), list(idents), b"CSR", resource=None)


PLAIN = IdentifierChallenges(
    "www.example.com", http01=("tok", "tok.thumb"), dns01=("_acme-challenge.www.example.com", "v"),
    alpn01="alpn.thumb",
)  # fmt: skip
WILD = IdentifierChallenges("*.example.com", dns01=("_acme-challenge.example.com", "w"))


def test_plain_names_use_the_configured_challenge_and_wildcards_dns01(alpn_api: Api) -> None:
    service: CertService = alpn_api.plane.certs
    kind, published = service._challenges(_order(PLAIN))
    assert kind == "tls-alpn-01"
    assert published == {
        "http01": {"tok": "tok.thumb"},
        "alpn01": {"www.example.com": "alpn.thumb"},
        "dns01": {},
    }
    kind, published = service._challenges(_order(WILD))
    assert kind == "dns-01"
    assert published == {
        "http01": {},
        "alpn01": {},
        "dns01": {"_acme-challenge.example.com": ["w"]},
    }
    only_http = IdentifierChallenges("www.example.com", http01=("tok", "tok.thumb"))
    assert service._challenges(_order(only_http))[0] == "http-01"  # what the CA offers


def test_the_edges_get_the_alpn_certificate_of_an_order_in_flight(alpn_api: Api) -> None:
    alpn_api.create_app("web")
    service: CertService = alpn_api.plane.certs
    service.add("web", "www.example.com")
    _kind, published = service._challenges(_order(PLAIN))
    service.store.update_certificate(
        "www.example.com", CertUpdate(challenges=published), at=alpn_api.clock.now()
    )
    tls = service.edge_snapshot()
    assert tls.http01 == {"tok": "tok.thumb"}
    assert tls.apps == {"www.example.com": "web"}
    cert = x509.load_pem_x509_certificate(tls.alpn01["www.example.com"].chain_pem)
    assert cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID).critical
    assert service.edge_snapshot().alpn01 == tls.alpn01  # made once per order, not per poll


def test_a_cycle_with_the_ca_down_records_why_and_backs_off(alpn_api: Api) -> None:
    alpn_api.create_app("web")
    service: CertService = alpn_api.plane.certs
    service.add("web", "www.example.com")
    reason = service.run_once()
    assert reason.startswith(
        "www.example.com: order failed: the ACME CA at https://127.0.0.1:9/dir"
    )
    row = service.store.get_certificate("www.example.com")
    assert row.failures == 1 and "cannot be reached" in row.last_error
    assert row.next_attempt is not None and row.next_attempt > alpn_api.clock.now()
    assert row.challenges == {}
    assert "retrying at" in service.run_once()  # backing off: nothing tried
