"""The interactive console's relay through the real control plane, over TestClient's
WebSockets: the user's socket queues a ``tty`` order for the machine's host, a fake agent
takes it from the exec long poll and dials in with its own socket, and frames flow both
ways as they are. Refusals arrive as an ``{"error", "hint", "status"}`` frame."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from .conftest import AUTH, Api, bearer, mint_token


@pytest.fixture
def machine(api: Api) -> dict[str, Any]:
    api.register_host("ams-1", "ams", subnet="10.1.0.0/24")
    api.create_app()
    return api.report(api.create_machine(region="ams"), "started")


def console_url(machine: dict[str, Any], app: str = "web", query: str = "") -> str:
    return f"/v1/apps/{app}/machines/{machine['id']}/console{query}"


def fake_agent(api: Api, seen: list[Any]) -> threading.Thread:
    """Takes the console order, dials in, echoes one frame back upper-cased, reports the
    resize it got, then says the shell exited 0."""

    def serve() -> None:
        taken = api.client.get("/v1/hosts/ams-1/exec-requests?timeout=5").json()["requests"]
        (order,) = taken
        seen.append(order)
        with api.client.websocket_connect(
            f"/v1/hosts/ams-1/console/{order['id']}", headers=AUTH
        ) as socket:
            keys = socket.receive_bytes()
            socket.send_bytes(keys.upper())
            seen.append(socket.receive_text())
            socket.send_text(json.dumps({"exit": 0}))
            seen.append("sent exit")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_frames_flow_between_the_user_and_the_machines_agent(
    api: Api, machine: dict[str, Any]
) -> None:
    seen: list[Any] = []
    agent = fake_agent(api, seen)
    with api.client.websocket_connect(
        console_url(machine, query="?cols=100&rows=30"), headers=AUTH
    ) as socket:
        socket.send_bytes(b"echo hi\n")
        assert socket.receive_bytes() == b"ECHO HI\n"
        socket.send_text(json.dumps({"resize": [120, 40]}))
        assert json.loads(socket.receive_text()) == {"exit": 0}
    agent.join(10)
    order = seen[0]
    assert (order["tty"], order["cols"], order["rows"]) == (True, 100, 30)
    assert order["argv"] == ["sh"] and order["machine_id"] == machine["id"]
    assert json.loads(seen[1]) == {"resize": [120, 40]}
    assert api.plane.consoles.active() == 0


def refusal(api: Api, url: str, headers: dict[str, str]) -> dict[str, Any]:
    with api.client.websocket_connect(url, headers=headers) as socket:
        answer: dict[str, Any] = json.loads(socket.receive_text())
    return answer


def test_refusals_name_the_problem_and_queue_nothing(api: Api, two_orgs: dict[str, str]) -> None:
    api.register_host("ams-1", "ams")
    made = api.client.post(
        "/v1/apps/rocket/machines", json={"config": {"image": "r/x:1"}, "region": "ams"}
    )
    rocket = made.json()
    url = console_url(rocket, "rocket")
    stopped = refusal(api, url, AUTH)
    assert stopped["status"] == 409 and "commands run only in a started machine" in stopped["error"]
    api.report(rocket, "started")
    readonly = bearer(mint_token(api, two_orgs["alice"], kind="readonly", org_slug="acme"))
    assert refusal(api, url, readonly)["status"] == 403
    other = refusal(api, url, bearer(two_orgs["bob"]))
    assert (other["status"], other["error"]) == (404, "app 'rocket' not found")
    assert refusal(api, url, bearer("nope"))["status"] == 401
    bad = refusal(api, url + "?cmd=echo+'open", AUTH)
    assert bad["status"] == 400 and "cannot split" in bad["error"]
    assert api.client.get("/v1/hosts/ams-1/exec-requests?timeout=0").json() == {"requests": []}
    assert api.plane.consoles.active() == 0


def test_an_agent_cannot_join_a_console_that_does_not_wait(
    api: Api, machine: dict[str, Any]
) -> None:
    answer = refusal(api, "/v1/hosts/ams-1/console/01NOPE", AUTH)
    assert answer["status"] == 404 and "is not waiting" in answer["error"]
