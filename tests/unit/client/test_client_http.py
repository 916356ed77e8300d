from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import ferry.client
from ferry.client import FerryClient
from ferry.errors import ApiError, UnavailableError, ValidationError
from ferry.model import CheckStatus, MachineConfig

MACHINE = {
    "id": "3d8d1a2b4c5e6f",
    "name": "web-1",
    "app_name": "web",
    "state": "started",
    "desired_state": "started",
    "region": "ams",
    "instance_id": "01JABCDEF",
    "private_ip": "fdaa:0:1:0:1:0:1:2",
    "host_ip": "10.77.1.2",
    "config": {"image": "reg/web@sha256:" + "0" * 64},
    "host_id": "ams-1",
    "created_at": "2026-11-26T10:00:00Z",
    "updated_at": "2026-11-26T10:00:00Z",
}
APP = {
    "id": "app1",
    "name": "web",
    "organization": {"name": "Personal", "slug": "personal"},
    "created_at": "2026-11-26T10:00:00Z",
}


def client_for(
    handler: Callable[[httpx.Request], httpx.Response], token: str | None = "secret"
) -> FerryClient:
    return FerryClient("http://ferry.test", token, transport=httpx.MockTransport(handler))


def test_exports_are_what_the_package_promises() -> None:
    assert set(ferry.client.__all__) == {n for n in dir(ferry.client) if not n.startswith("_")} - {
        "annotations"
    }


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_API_URL", "http://10.1.2.3:9999/")
    monkeypatch.setenv("FERRY_API_TOKEN", "from-env")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    client = FerryClient(transport=httpx.MockTransport(handler))
    assert client.healthz()
    assert str(seen[0].url) == "http://10.1.2.3:9999/healthz"
    assert seen[0].headers["authorization"] == "Bearer from-env"


def test_token_falls_back_to_the_admin_token_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FERRY_API_TOKEN", raising=False)
    monkeypatch.setenv("FERRY_HOME", str(tmp_path))
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "admin-token").write_text("file-token\n")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    FerryClient(transport=httpx.MockTransport(handler)).healthz()
    assert seen[0].headers["authorization"] == "Bearer file-token"


def test_error_answer_raises_api_error_with_message_hint_and_status() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            409, json={"error": "app 'web' already exists", "hint": "pick another"}
        )

    with pytest.raises(ApiError) as error:
        client_for(handler).create_app("web")
    assert error.value.message == "app 'web' already exists"
    assert error.value.hint == "pick another"
    assert error.value.status == 409


def test_error_answer_that_is_not_json_still_names_the_status() -> None:
    client = client_for(lambda request: httpx.Response(502, text="Bad Gateway from nginx"))
    with pytest.raises(ApiError, match="answered 502: Bad Gateway from nginx"):
        client.list_apps()


def test_missing_token_401_gets_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FERRY_API_TOKEN", raising=False)
    monkeypatch.setenv("FERRY_HOME", "/nonexistent-ferry-home")

    def handler(request: httpx.Request) -> httpx.Response:
        assert "authorization" not in request.headers
        return httpx.Response(401, json={"error": "missing or invalid token", "hint": None})

    with pytest.raises(ApiError) as error:
        client_for(handler, token=None).list_apps()
    assert error.value.status == 401 and "FERRY_API_TOKEN" in (error.value.hint or "")


def test_refused_connection_is_unavailable_with_a_hint() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(UnavailableError) as error:
        client_for(handler).list_apps()
    assert error.value.message == "cannot reach the Ferry API at http://ferry.test"
    assert "ferry cluster status" in (error.value.hint or "")


def test_real_refused_port_on_loopback_is_unavailable() -> None:
    with pytest.raises(UnavailableError, match="cannot reach"):
        FerryClient("http://127.0.0.1:1", "t").list_apps()


def test_timeout_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(UnavailableError, match="did not answer in time"):
        client_for(handler).get_app("web")


def test_bad_url_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="invalid Ferry API URL"):
        FerryClient("ftp://nowhere", "t").list_apps()


def test_models_are_parsed_and_paths_escaped() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/apps":
            return httpx.Response(200, json={"total_apps": 1, "apps": [APP]})
        return httpx.Response(200, json=[MACHINE])

    client = client_for(handler)
    (app,) = client.list_apps()
    assert app.name == "web" and app.organization.slug == "personal"
    (machine,) = client.list_machines("we/b", region="ams")
    assert machine.host_ip == "10.77.1.2"
    assert seen[1].url.raw_path == b"/v1/apps/we%2Fb/machines?region=ams&include_deleted=false"


def test_create_machine_sends_the_machines_api_body() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=MACHINE)

    client_for(handler).create_machine("web", MachineConfig(image="img"), region="ams")
    body = bodies[0]
    assert body["region"] == "ams" and "name" not in body and "skip_launch" not in body
    assert body["config"]["image"] == "img"  # type: ignore[index]


def test_wait_uses_a_request_timeout_longer_than_the_server_wait() -> None:
    timeouts: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        assert request.url.params["timeout"] == "120"
        assert request.url.params["instance_id"] == "01J"
        return httpx.Response(200, json={"ok": True, "state": "started"})

    assert (
        client_for(handler).wait_machine("web", "m1", timeout=120, instance_id="01J") == "started"
    )
    assert timeouts[0]["read"] > 120


def test_wait_timeout_is_an_api_error_with_status_408() -> None:
    client = client_for(
        lambda r: httpx.Response(408, json={"error": "timeout waiting for machine"})
    )
    with pytest.raises(ApiError) as error:
        client.wait_machine("web", "m1", timeout=1)
    assert error.value.status == 408


def test_watch_host_machines_long_polls_past_the_server_timeout() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"resource_version": 42, "machines": [MACHINE]})

    version, machines = client_for(handler).watch_host_machines("ams-1", since=41, timeout=30)
    assert version == 42 and machines[0].id == MACHINE["id"]
    assert seen[0].url.params["since"] == "41"
    assert seen[0].extensions["timeout"]["read"] > 30


def test_report_status_sends_state_event_and_checks() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        assert request.url.path == "/v1/hosts/ams-1/machines/m1/status"
        return httpx.Response(200, json=MACHINE)

    client_for(handler).report_status(
        "ams-1",
        "m1",
        "failed",
        "01J",
        "exit",
        "failed",
        reason="oom",
        exit_code=137,
        checks=[CheckStatus(name="http", status="critical")],
    )
    body = bodies[0]
    assert body["state"] == "failed" and body["exit_code"] == 137
    assert body["event"] == {"type": "exit", "status": "failed", "reason": "oom"}
    assert body["checks"][0]["status"] == "critical"  # type: ignore[index]
    assert "restart_count" not in body


def test_unreadable_answer_is_unavailable_not_a_pydantic_traceback() -> None:
    client = client_for(lambda r: httpx.Response(200, json={"id": "x"}))
    with pytest.raises(UnavailableError, match="cannot read"):
        client.get_machine("web", "x")
