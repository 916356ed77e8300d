"""``/v1/apps/{app}/certificates`` and the edges' ``/v1/edges/{region}/tls`` feed: shapes,
refusals (never a 500, nothing changed), authorization, and keys kept sealed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from ferry.server.certs_service import CertSettings
from ferry.store.certs_base import CertUpdate
from ferry.tls.acme_client import alpn_challenge_cert

from .conftest import Api, FakeClock, bearer, mint_token, open_api

CERTS = "/v1/apps/web/certificates"


@pytest.fixture
def certs_api(tmp_path: Path, clock: FakeClock) -> Iterator[Api]:
    settings = CertSettings(
        cluster_domain="ferry.test",
        edge_addresses=("10.99.0.1",),
        resolve=lambda name: {"www.example.com": ["10.99.0.1"]}.get(name, ["203.0.113.9"]),
    )
    yield from open_api(tmp_path / "state.db", clock, cert_settings=settings)


def _add(api: Api, hostname: str, app: str = "web") -> dict[str, object]:
    answer = api.client.post(f"/v1/apps/{app}/certificates/acme", json={"hostname": hostname})
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_add_list_show_remove_in_flys_shapes(certs_api: Api) -> None:
    certs_api.create_app("web")
    added = _add(certs_api, "WWW.Example.com")
    assert added["hostname"] == "www.example.com"
    assert added["configured"] is False
    assert added["client_status"] == "Awaiting certificates"
    assert added["dns_validation_hostname"] == "_acme-challenge.www.example.com"
    assert added["dns_requirements"] == {
        "a": ["10.99.0.1"],
        "acme_challenge": {"name": "_acme-challenge.www.example.com"},
    }
    listed = certs_api.client.get(CERTS).json()
    assert listed["total_count"] == 1
    assert [c["hostname"] for c in listed["certificates"]] == ["www.example.com"]
    shown = certs_api.client.get(f"{CERTS}/www.example.com")
    assert shown.status_code == 200 and shown.json()["issued"] == []
    assert certs_api.client.delete(f"{CERTS}/www.example.com").status_code == 200
    assert certs_api.client.get(f"{CERTS}/www.example.com").status_code == 404
    assert certs_api.client.get(CERTS).json()["total_count"] == 0


@pytest.mark.parametrize(
    ("hostname", "says"),
    [("10.0.0.1", "IP address"), ("web.ferry.test", "cluster's own domain"),
     ("not a.name.example", "invalid label"), ("https://x.example.com", "not a host name")],
)  # fmt: skip
def test_bad_host_names_are_400_and_nothing_is_stored(
    certs_api: Api, hostname: str, says: str
) -> None:
    certs_api.create_app("web")
    answer = certs_api.client.post(f"{CERTS}/acme", json={"hostname": hostname})
    assert answer.status_code == 400
    assert says in answer.json()["error"]
    assert certs_api.client.get(CERTS).json()["total_count"] == 0


def test_a_taken_host_name_is_409_on_this_app_and_on_another(certs_api: Api) -> None:
    certs_api.create_app("web")
    certs_api.create_app("api")
    _add(certs_api, "www.example.com")
    again = certs_api.client.post(f"{CERTS}/acme", json={"hostname": "www.example.com"})
    assert again.status_code == 409 and "this app" in again.json()["error"]
    other = certs_api.client.post(
        "/v1/apps/api/certificates/acme", json={"hostname": "www.example.com"}
    )
    assert other.status_code == 409 and "another app" in other.json()["error"]
    # the other app cannot see, check or remove it
    assert certs_api.client.get("/v1/apps/api/certificates/www.example.com").status_code == 404
    assert certs_api.client.delete("/v1/apps/api/certificates/www.example.com").status_code == 404
    assert certs_api.client.get(f"{CERTS}/www.example.com").status_code == 200


def test_another_organizations_app_is_404_and_a_readonly_token_only_reads(
    certs_api: Api, two_orgs: dict[str, str]
) -> None:
    alice, bob = bearer(two_orgs["alice"]), bearer(two_orgs["bob"])
    added = certs_api.client.post(
        "/v1/apps/rocket/certificates/acme", json={"hostname": "rocket.example.com"}, headers=alice
    )
    assert added.status_code == 201
    for method, path in (
        ("GET", "/v1/apps/rocket/certificates"),
        ("GET", "/v1/apps/rocket/certificates/rocket.example.com"),
        ("POST", "/v1/apps/rocket/certificates/rocket.example.com/check"),
        ("DELETE", "/v1/apps/rocket/certificates/rocket.example.com"),
    ):
        answer = certs_api.client.request(method, path, headers=bob)
        assert answer.status_code == 404, (method, path, answer.text)
    readonly = mint_token(certs_api, two_orgs["alice"], kind="readonly", app_name="rocket")
    ro = bearer(readonly)
    assert certs_api.client.get("/v1/apps/rocket/certificates", headers=ro).status_code == 200
    refused = certs_api.client.post(
        "/v1/apps/rocket/certificates/acme", json={"hostname": "x.example.com"}, headers=ro
    )
    assert refused.status_code == 403


def test_check_says_where_a_name_points_and_that_no_ca_is_configured(certs_api: Api) -> None:
    certs_api.create_app("web")
    _add(certs_api, "www.example.com")
    _add(certs_api, "elsewhere.example.com")
    good = certs_api.client.post(f"{CERTS}/www.example.com/check").json()["check"]
    assert good["points_at_edges"] is True
    assert "resolves to the cluster's edges" in good["reason"]
    assert "no ACME CA is configured" in good["reason"]
    bad = certs_api.client.post(f"{CERTS}/elsewhere.example.com/check").json()["check"]
    assert bad["points_at_edges"] is False
    assert "resolves to 203.0.113.9, not to the cluster's edges (10.99.0.1)" in bad["reason"]


def _issue_directly(api: Api, hostname: str) -> bytes:
    """Store an issued certificate as the ACME flow would (key sealed by the plane)."""
    cert_pem, key_pem = alpn_challenge_cert(hostname, "token.thumb")
    service = api.plane.certs
    sealed = service.key.seal("certificate/web", hostname, key_pem.decode())
    now = api.clock.now()
    service.store.update_certificate(
        hostname,
        CertUpdate(
            status="issued", chain_pem=cert_pem,
            key=(sealed.ciphertext, sealed.nonce, sealed.key_id, sealed.digest),
            not_before=now, not_after=now + timedelta(days=90),
        ),
        at=now,
    )  # fmt: skip
    return key_pem


def test_only_an_edge_credential_reads_the_tls_feed_with_keys(
    certs_api: Api, tmp_path: Path
) -> None:
    certs_api.create_app("web")
    _add(certs_api, "www.example.com")
    key_pem = _issue_directly(certs_api, "www.example.com")
    shown = certs_api.client.get(f"{CERTS}/www.example.com").json()
    assert shown["configured"] is True and shown["client_status"] == "Ready"
    assert "PRIVATE KEY" not in str(shown)
    # the operator's token, a user's token, another region's edge: refused
    assert certs_api.client.get("/v1/edges/ams/tls").status_code == 403
    edge = mint_token(certs_api, "test-admin-token", kind="edge", region="ams")
    other = certs_api.client.get("/v1/edges/iad/tls", headers=bearer(edge))
    assert other.status_code == 403
    feed = certs_api.client.get("/v1/edges/ams/tls", headers=bearer(edge))
    assert feed.status_code == 200
    body = feed.json()
    assert body["certificates"]["www.example.com"]["key_pem"] == key_pem.decode()
    # a long-poll at the current version answers after its timeout with the same version
    again = certs_api.client.get(
        "/v1/edges/ams/tls", params={"since": body["version"], "timeout": 0.2}, headers=bearer(edge)
    )
    assert again.json()["version"] == body["version"]
    # the key is sealed in the store: not in the database file in plain text
    raw = (tmp_path / "state.db").read_bytes()
    for wal in tmp_path.glob("state.db-wal"):
        raw += wal.read_bytes()
    body_line = key_pem.decode().splitlines()[1].encode()
    assert body_line not in raw


def test_an_edge_of_a_cluster_without_certificates_is_told_a_version_it_can_wait_on(
    certs_api: Api,
) -> None:
    """Version 0 means "answer at once": handing it out made edges poll in a tight loop."""
    edge = mint_token(certs_api, "test-admin-token", kind="edge", region="ams")
    first = certs_api.client.get("/v1/edges/ams/tls", headers=bearer(edge)).json()
    assert first["version"] >= 1 and first["certificates"] == {}
    began = time.monotonic()
    again = certs_api.client.get(
        "/v1/edges/ams/tls", params={"since": first["version"], "timeout": 1}, headers=bearer(edge)
    )
    assert time.monotonic() - began >= 0.9  # it waited for a change that never came
    assert again.json()["version"] == first["version"]
