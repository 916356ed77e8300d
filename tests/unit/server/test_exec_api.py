"""``POST …/machines/{id}/exec`` through the real control plane, with a fake agent taking the
orders from ``GET /v1/hosts/{host}/exec-requests`` and answering them: Fly's shapes, the
hand-off to the machine's host, bad bodies (400, nothing queued), a machine that is not
started (409), a command killed at its timeout (408), an agent that does not answer (504),
who may run commands (writers; readonly 403; other organizations 404), and what is logged."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from ferry.server.routes import exec as exec_routes

from .conftest import Api, bearer, mint_token


@pytest.fixture
def machine(api: Api) -> dict[str, Any]:
    api.register_host("ams-1", "ams", subnet="10.1.0.0/24")
    api.create_app()
    return api.report(api.create_machine(region="ams"), "started")


def exec_url(machine: dict[str, Any], app: str = "web") -> str:
    return f"/v1/apps/{app}/machines/{machine['id']}/exec"


class FakeAgent:
    """Takes one host's orders over the API on a thread and answers each with ``answer``."""

    def __init__(self, api: Api, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.api = api
        self.answer = answer
        self.orders: list[dict[str, Any]] = []
        self.replies: list[int] = []
        self.thread = threading.Thread(target=self._serve_one, daemon=True)
        self.thread.start()

    def _serve_one(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            taken = self.api.client.get("/v1/hosts/ams-1/exec-requests?timeout=5")
            assert taken.status_code == 200, taken.text
            for order in taken.json()["requests"]:
                self.orders.append(order)
                url = f"/v1/hosts/ams-1/exec-requests/{order['id']}"
                self.replies.append(self.api.client.post(url, json=self.answer(order)).status_code)
                return

    def join(self) -> None:
        self.thread.join(15)


def test_a_command_runs_on_the_machines_host_and_answers_flys_shape(
    api: Api, machine: dict[str, Any]
) -> None:
    agent = FakeAgent(api, lambda order: {"stdout": "hello\n", "stderr": "", "exit_code": 0})
    answer = api.client.post(exec_url(machine), json={"command": ["echo", "hello"]})
    agent.join()
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"stdout": "hello\n", "stderr": "", "exit_code": 0, "truncated": False}
    (order,) = agent.orders
    assert order["machine_id"] == machine["id"]
    assert order["instance_id"] == machine["instance_id"]
    assert order["argv"] == ["echo", "hello"]
    assert order["timeout"] == 30 and order["stdin"] == ""
    assert agent.replies == [200]
    assert api.plane.execs.in_flight() == 0


def test_cmd_is_split_like_a_shell_and_the_exit_code_stdin_and_timeout_pass_through(
    api: Api, machine: dict[str, Any]
) -> None:
    agent = FakeAgent(api, lambda order: {"stdout": "", "stderr": "no\n", "exit_code": 3})
    body = {"cmd": "sh -c 'cat; exit 3'", "stdin": "typed", "timeout": 5}
    answer = api.client.post(exec_url(machine), json=body)
    agent.join()
    assert answer.status_code == 200, answer.text
    assert answer.json()["exit_code"] == 3 and answer.json()["stderr"] == "no\n"
    (order,) = agent.orders
    assert order["argv"] == ["sh", "-c", "cat; exit 3"]
    assert (order["stdin"], order["timeout"]) == ("typed", 5)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "`command`"),
        ({"command": ["ls"], "cmd": "ls"}, "not both"),
        ({"command": []}, "empty"),
        ({"cmd": "   "}, "empty"),
        ({"cmd": "echo 'open"}, "quotation"),
        ({"command": ["ls"], "timeout": 301}, "timeout"),
        ({"command": ["ls"], "tty": True}, "tty"),
        ({"command": ["ls"], "container": "sidecar"}, "container"),
        ({"command": ["a" * 70_000]}, "64 KiB"),
    ],
)
def test_a_bad_body_is_400_naming_the_problem_and_nothing_is_queued(
    api: Api, machine: dict[str, Any], body: dict[str, Any], named: str
) -> None:
    answer = api.client.post(exec_url(machine), json=body)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["error"]
    assert api.plane.execs.in_flight() == 0
    taken = api.client.get("/v1/hosts/ams-1/exec-requests?timeout=0")
    assert taken.json() == {"requests": []}


def test_a_machine_that_is_not_started_is_409_naming_its_state(api: Api) -> None:
    api.register_host("ams-1", "ams")
    api.create_app()
    created = api.create_machine(region="ams")
    answer = api.client.post(exec_url(created), json={"command": ["ls"]})
    assert answer.status_code == 409
    assert f"machine {created['id']} is created" in answer.json()["error"]
    assert "ferry machine start" in answer.json()["hint"]
    stopped = api.report(created, "stopped", "exit")
    assert api.client.post(exec_url(stopped), json={"command": ["ls"]}).status_code == 409
    assert api.plane.execs.in_flight() == 0


def test_an_unknown_machine_is_404(api: Api, machine: dict[str, Any]) -> None:
    answer = api.client.post("/v1/apps/web/machines/0000/exec", json={"command": ["ls"]})
    assert answer.status_code == 404


def test_a_command_killed_at_its_timeout_is_408_without_its_output(
    api: Api, machine: dict[str, Any]
) -> None:
    agent = FakeAgent(
        api,
        lambda order: {"stdout": "partial", "exit_code": 137, "exit_signal": 9, "timed_out": True},
    )
    answer = api.client.post(exec_url(machine), json={"command": ["sleep", "9"], "timeout": 1})
    agent.join()
    assert answer.status_code == 408
    assert answer.json()["error"] == "sleep did not finish within 1 s and was killed"
    assert "partial" not in answer.text


def test_a_container_the_agent_does_not_run_is_409_with_the_agents_sentence(
    api: Api, machine: dict[str, Any]
) -> None:
    sentence = f"machine {machine['id']} is not running on host ams-1"
    agent = FakeAgent(api, lambda order: {"error": sentence})
    answer = api.client.post(exec_url(machine), json={"command": ["ls"]})
    agent.join()
    assert answer.status_code == 409
    assert answer.json()["error"] == sentence


def test_an_agent_that_never_takes_the_command_is_504_and_its_late_answer_is_404(
    api: Api, machine: dict[str, Any]
) -> None:
    api.plane.execs.pickup_seconds = 0.5
    started = time.monotonic()
    answer = api.client.post(exec_url(machine), json={"command": ["ls"], "timeout": 100})
    assert 0.5 <= time.monotonic() - started < 5  # not the command's 100 s
    assert answer.status_code == 504
    expected = "the agent of host ams-1 did not pick up the command within 0.5 s"
    assert answer.json()["error"] == expected
    assert api.plane.execs.in_flight() == 0
    assert api.client.get("/v1/hosts/ams-1/exec-requests?timeout=0").json() == {"requests": []}
    late = api.client.post("/v1/hosts/ams-1/exec-requests/01ABC", json={"exit_code": 0})
    assert late.status_code == 404


def test_writers_may_run_commands_readonly_tokens_are_403_other_orgs_404(
    api: Api, two_orgs: dict[str, str]
) -> None:
    api.register_host("ams-1", "ams")
    made = api.client.post(
        "/v1/apps/rocket/machines", json={"config": {"image": "r/x:1"}, "region": "ams"}
    )
    assert made.status_code == 200, made.text
    rocket = api.report(made.json(), "started")
    url = exec_url(rocket, "rocket")
    readonly = bearer(mint_token(api, two_orgs["alice"], kind="readonly", org_slug="acme"))
    refused = api.client.post(url, json={"command": ["ls"]}, headers=readonly)
    assert refused.status_code == 403
    other = api.client.post(url, json={"command": ["ls"]}, headers=bearer(two_orgs["bob"]))
    assert other.status_code == 404
    assert other.json()["error"] == "app 'rocket' not found"
    assert api.plane.execs.in_flight() == 0

    agent = FakeAgent(api, lambda order: {"stdout": "ok", "exit_code": 0})
    mine = api.client.post(url, json={"command": ["ls"]}, headers=bearer(two_orgs["alice"]))
    agent.join()
    assert mine.status_code == 200 and mine.json()["stdout"] == "ok"


def test_an_agent_that_takes_the_command_but_never_answers_is_504_saying_so(
    api: Api, machine: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exec_routes, "ANSWER_SLACK", 0.2)
    taken: list[Any] = []

    def take() -> None:
        got = api.client.get("/v1/hosts/ams-1/exec-requests?timeout=5")
        taken.extend(got.json()["requests"])

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    answer = api.client.post(exec_url(machine), json={"command": ["ls"], "timeout": 1})
    thread.join(5)
    assert len(taken) == 1
    assert answer.status_code == 504
    assert answer.json()["error"] == (
        "the agent of host ams-1 took the command but did not answer within 1.2 s"
    )


def test_only_the_command_name_and_exit_code_are_logged(
    api: Api, machine: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    agent = FakeAgent(api, lambda order: {"stdout": "s3cr3t-out", "exit_code": 0})
    body = {"command": ["/bin/printenv", "DATABASE_PASSWORD"], "stdin": "s3cr3t-in"}
    answer = api.client.post(exec_url(machine), json=body)
    agent.join()
    assert answer.status_code == 200
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"exec printenv in machine {machine['id']}: exit 0" in logged
    assert "s3cr3t" not in logged and "DATABASE_PASSWORD" not in logged
    trail = api.client.get("/v1/audit")
    assert "s3cr3t" not in trail.text and "DATABASE_PASSWORD" not in trail.text
    (record,) = [r for r in trail.json() if r["route"].endswith("/exec")]
    assert record["target"]["command"] == "printenv"
    assert record["target"]["exit_code"] == "0" and record["status"] == 200
