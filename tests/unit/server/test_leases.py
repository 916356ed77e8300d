"""Machine leases through the API, the way fly-go and flyctl use them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ...server_process import ServerProcess
from .conftest import Api, FakeClock, host_body, open_api

NONCE = "fly-machine-lease-nonce"


@pytest.fixture
def machine(api: Api) -> dict[str, Any]:
    api.register_host()
    api.create_app()
    created = api.create_machine()
    return api.report(created, "started")


def _url(machine: dict[str, Any], tail: str = "") -> str:
    return f"/v1/apps/web/machines/{machine['id']}{tail}"


def _acquire(api: Api, machine: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = api.client.post(_url(machine, "/lease"), json=body or None)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_acquire_answers_fly_gos_machine_lease_shape(api: Api, machine: dict[str, Any]) -> None:
    answer = _acquire(api, machine, ttl=13, description="fly deploy")
    assert answer["status"] == "success"
    data = answer["data"]
    assert set(data) == {"nonce", "expires_at", "owner", "description", "version"}
    assert data["expires_at"] == int(api.clock.now().timestamp()) + 13
    assert (data["owner"], data["description"]) == ("admin", "fly deploy")
    assert api.client.get(_url(machine, "/lease")).json() == answer


def test_fly_go_sends_ttl_as_a_query_parameter(api: Api, machine: dict[str, Any]) -> None:
    response = api.client.post(_url(machine, "/lease?ttl=7"))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["expires_at"] == int(api.clock.now().timestamp()) + 7


def test_a_second_acquirer_gets_409_naming_the_holder(api: Api, machine: dict[str, Any]) -> None:
    _acquire(api, machine, ttl=30, description="fly deploy")
    response = api.client.post(_url(machine, "/lease"), json={"ttl": 30})
    assert response.status_code == 409
    assert "held by admin (fly deploy) until 2026-01-01T00:00:30Z" in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "tail", "body"),
    [
        ("POST", "", {"config": {"image": "registry.local/web:2"}}),
        ("POST", "/stop", None),
        ("POST", "/start", None),
        ("POST", "/restart", None),
        ("POST", "/signal", {"signal": "SIGUSR1"}),
        ("DELETE", "?force=true", None),
        ("POST", "/cordon", None),
    ],
)
def test_changes_need_the_nonce_while_a_lease_is_held(
    api: Api, machine: dict[str, Any], method: str, tail: str, body: dict[str, Any] | None
) -> None:
    nonce = _acquire(api, machine)["data"]["nonce"]
    before = api.client.get(_url(machine)).json()
    for headers, status in (({}, 409), ({NONCE: "not-it"}, 409)):
        refused = api.client.request(method, _url(machine, tail), json=body, headers=headers)
        assert refused.status_code == status, refused.text
        assert "lease" in refused.json()["error"]
        after = api.client.get(_url(machine)).json()
        assert after["revision"] == before["revision"]  # nothing changed
    allowed = api.client.request(method, _url(machine, tail), json=body, headers={NONCE: nonce})
    assert allowed.status_code == 200, allowed.text


def test_an_expired_nonce_is_412_and_changes_nothing(api: Api, machine: dict[str, Any]) -> None:
    nonce = _acquire(api, machine, ttl=5)["data"]["nonce"]
    api.clock.advance(6)
    response = api.client.post(_url(machine, "/stop"), headers={NONCE: nonce})
    assert response.status_code == 412
    assert "expired 1 s ago" in response.json()["error"]
    assert api.client.get(_url(machine)).json()["desired_state"] == "started"
    assert api.client.get(_url(machine, "/lease")).status_code == 404
    # Expired: anyone may act without a nonce, and take a new lease.
    assert api.client.post(_url(machine, "/stop")).status_code == 200
    assert _acquire(api, machine)["data"]["nonce"] != nonce


def test_refresh_with_the_nonce_extends_the_same_lease(api: Api, machine: dict[str, Any]) -> None:
    first = _acquire(api, machine, ttl=10)["data"]
    api.clock.advance(8)
    refreshed = api.client.post(
        _url(machine, "/lease"), json={"ttl": 10}, headers={NONCE: first["nonce"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    data = refreshed.json()["data"]
    assert data["nonce"] == first["nonce"] and data["expires_at"] == first["expires_at"] + 8
    api.clock.advance(5)  # past the first expiry, within the refreshed one
    held = api.client.post(_url(machine, "/stop"))
    assert held.status_code == 409


def test_release_needs_the_nonce_then_frees_the_machine(api: Api, machine: dict[str, Any]) -> None:
    nonce = _acquire(api, machine)["data"]["nonce"]
    assert api.client.delete(_url(machine, "/lease")).status_code == 400
    assert api.client.delete(_url(machine, "/lease"), headers={NONCE: "x"}).status_code == 409
    assert api.client.get(_url(machine, "/lease")).status_code == 200
    released = api.client.delete(_url(machine, "/lease"), headers={NONCE: nonce})
    assert released.status_code == 200
    assert api.client.get(_url(machine, "/lease")).status_code == 404
    assert api.client.post(_url(machine, "/stop")).status_code == 200
    # The old nonce no longer means anything.
    assert api.client.post(_url(machine, "/start"), headers={NONCE: nonce}).status_code == 412


def test_bad_lease_bodies_are_400(api: Api, machine: dict[str, Any]) -> None:
    bodies = ({"ttl": 0}, {"ttl": 100000}, {"ttl": "soon"}, {"description": "x" * 300}, {"tll": 5})
    for body in bodies:
        response = api.client.post(_url(machine, "/lease"), json=body)
        assert response.status_code == 400, (body, response.text)
    assert api.client.get(_url(machine, "/lease")).status_code == 404


def test_create_with_lease_ttl_returns_the_machine_holding_a_lease(api: Api) -> None:
    api.register_host()
    api.create_app()
    created = api.create_machine(lease_ttl=20)
    lease = api.client.get(f"/v1/apps/web/machines/{created['id']}/lease").json()["data"]
    assert created["nonce"] == lease["nonce"]
    assert lease["expires_at"] == int(api.clock.now().timestamp()) + 20
    stop = f"/v1/apps/web/machines/{created['id']}/stop"
    assert api.client.post(stop).status_code == 409
    assert api.client.post(stop, headers={NONCE: created["nonce"]}).status_code == 200


def test_lease_of_unknown_machine_is_404(api: Api, machine: dict[str, Any]) -> None:
    assert api.client.post("/v1/apps/web/machines/nope/lease").status_code == 404
    assert api.client.get("/v1/apps/web/machines/nope/lease").status_code == 404


def test_a_lease_survives_reopening_the_store(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    clock = FakeClock()
    for api in open_api(db, clock):
        api.register_host()
        api.create_app()
        machine = api.create_machine()
        nonce = _acquire(api, machine, ttl=60)["data"]["nonce"]
    for api in open_api(db, clock):
        assert api.client.get(_url(machine, "/lease")).json()["data"]["nonce"] == nonce
        assert api.client.post(_url(machine, "/stop")).status_code == 409
        assert api.client.post(_url(machine, "/stop"), headers={NONCE: nonce}).status_code == 200


def test_a_lease_survives_a_kill_9_of_the_real_server(plane: ServerProcess) -> None:
    host = host_body(cpus=2, memory_mb=2048)
    with plane.http() as http:
        assert http.post("/v1/hosts", json=host).status_code == 200
        assert http.post("/v1/apps", json={"name": "web"}).status_code == 201
        created = http.post("/v1/apps/web/machines", json={"config": {"image": "x"}}).json()
        lease = http.post(f"/v1/apps/web/machines/{created['id']}/lease?ttl=600").json()["data"]
    plane.kill_9()

    plane.start()
    with plane.http() as http:
        machine = f"/v1/apps/web/machines/{created['id']}"
        assert http.get(f"{machine}/lease").json()["data"] == lease
        assert http.post(f"{machine}/stop").status_code == 409
        assert http.post(f"{machine}/stop", headers={NONCE: lease["nonce"]}).status_code == 200
