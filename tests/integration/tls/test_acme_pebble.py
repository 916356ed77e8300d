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


def test_wildcard_certificate_by_dns01_through_the_edge_dns(world: AcmeWorld) -> None:
    world.admin.add_certificate("web", "*.apps.example.test")
    cert = world.issued("*.apps.example.test")
    assert cert["dns_validation_hostname"] == "_acme-challenge.apps.example.test"
    assert world.edge is not None
    bundle = wait_for(
        "the edge has the wildcard",
        lambda: world.edge.feed.current().certificates.get("*.apps.example.test"),  # type: ignore[union-attr]
    )
    names = _leaf(bundle.chain_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == ["*.apps.example.test"]
    # the TXT record is gone once the order is done
    assert not world.edge.feed.current().dns01


def test_renewal_with_a_short_lifetime_and_a_ca_that_goes_down(tmp_path: Path) -> None:
    """Pebble issues 15 s certificates: renewed with a third of it left; then, with the CA
    down, the renewal fails, the edge keeps the certificate and `check` says why."""
    world = AcmeWorld(tmp_path, validity=15)
    try:
        world.admin.add_certificate("web", "renew.example.test")
        first = world.issued("renew.example.test")
        renewed = wait_for(
            "a renewed certificate",
            lambda: (
                (c := world.admin.get_certificate("web", "renew.example.test"))["expires_at"]
                != first["expires_at"]
                and c["configured"]
                and c
            ),
            timeout=30,
        )
        assert renewed["expires_at"] > first["expires_at"]
        assert world.edge is not None
        served = wait_for(
            "the edge serves the renewed certificate",
            lambda: (
                (b := world.edge.feed.current().certificates.get("renew.example.test"))  # type: ignore[union-attr]
                and _leaf(b.chain_pem).not_valid_after_utc.isoformat()[:19]
                == renewed["expires_at"][:19]
                and b
            ),
        )
        world.stop_pebble()
        failed = wait_for(
            "a failed renewal",
            lambda: (
                (c := world.admin.get_certificate("web", "renew.example.test"))["last_error"] and c
            ),
            timeout=30,
        )
        assert "cannot be reached" in failed["last_error"]
        assert world.edge.feed.current().certificates["renew.example.test"] == served
        checked = world.admin.check_certificate("web", "renew.example.test")
        reason = checked["check"]["reason"]
        assert "current certificate stays in use" in reason
        assert "cannot be reached" in reason
        assert "resolves to the cluster's edges" in reason
        # the CA comes back (a new Pebble: it forgot our account): `check` renews at once
        world.start_pebble()
        back = world.admin.check_certificate("web", "renew.example.test")
        assert back["configured"] is True and back["last_error"] is None, back
        assert back["expires_at"] > renewed["expires_at"]
        assert "certificate issued (renew)" in back["check"]["reason"]
    finally:
        world.close()


def test_a_ca_that_refuses_says_why_in_check(tmp_path: Path) -> None:
    world = AcmeWorld(tmp_path, blocked=("blocked.example.test",))
    try:
        world.admin.add_certificate("web", "blocked.example.test")
        failed = wait_for(
            "a refused order",
            lambda: (
                (c := world.admin.get_certificate("web", "blocked.example.test"))["last_error"]
                and c
            ),
        )
        assert "refused" in failed["last_error"]
        assert "rejectedIdentifier" in failed["last_error"]
        assert failed["configured"] is False
        checked = world.admin.check_certificate("web", "blocked.example.test")
        reason = checked["check"]["reason"]
        assert "rejectedIdentifier" in reason
        # the cluster's DNS answers every added name (as the user's provider would)
        assert "resolves to the cluster's edges (127.0.0.1)" in reason
        assert checked["check"]["points_at_edges"] is True
        assert checked["configured"] is False
    finally:
        world.close()


def test_an_edge_restarted_while_the_control_plane_is_down_keeps_its_certificates(
    world: AcmeWorld,
) -> None:
    world.admin.add_certificate("web", "www.example.test")
    world.issued("www.example.test")
    assert world.edge is not None
    bundle = wait_for(
        "the edge has the certificate",
        lambda: world.edge.feed.current().certificates.get("www.example.test"),  # type: ignore[union-attr]
    )
    state = world.root / "edge" / "tls.json"
    assert state.stat().st_mode & 0o777 == 0o600
    world.server.kill_9()
    world.stop_edge()
    world.start_edge()
    assert world.edge is not None
    assert world.edge.feed.current().certificates["www.example.test"] == bundle
    assert not world.edge.feed.connected
