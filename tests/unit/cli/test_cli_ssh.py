"""`ferry ssh console`: -C runs the command (split like a shell, no shell) in the chosen
machine through the exec API, prints stdout and stderr as they are and exits with the
command's code; --machine, -s and the default choice; what is refused and why."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ferry.cli.ssh import choose_machine, split_command
from ferry.client import FerryClient
from ferry.errors import ValidationError
from ferry.model import Machine

from .cli_fakes import FakeApi, invoke, machine_json


class ExecApi(FakeApi):
    """The fake API plus ``POST …/exec``, answering ``reply`` and recording each body."""

    def __init__(self, reply: dict[str, Any] | None = None, status: int = 200) -> None:
        super().__init__()
        self.reply = reply or {"stdout": "out\n", "stderr": "err\n", "exit_code": 0}
        self.status = status
        self.execs: list[tuple[str, Any]] = []

    def client(self) -> FerryClient:
        return FerryClient("http://ferry.test", "t", transport=httpx.MockTransport(self.route))

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/exec"):
            self.execs.append(
                (request.url.path, httpx.Response(200, content=request.content).json())
            )
            return httpx.Response(self.status, json=self.reply)
        return self.handle(request)


def api_with_machines() -> ExecApi:
    api = ExecApi()
    api.add_app("web")
    api.add_machine("b2", "sin")
    api.add_machine("a1", "ams", state="stopped")
    api.add_machine("c3", "iad")
    return api


def test_c_runs_the_command_in_the_first_started_machine_and_prints_it() -> None:
    api = api_with_machines()
    result = invoke(api, ["ssh", "console", "-a", "web", "-C", "sh -c 'ls -l /'"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "out\n" and result.stderr == "err\n"
    ((path, body),) = api.execs
    assert path == "/v1/apps/web/machines/c3/exec"  # the first started one, by region then id
    assert body == {"command": ["sh", "-c", "ls -l /"]}


def test_the_commands_exit_code_is_ferrys_and_machine_and_timeout_are_passed() -> None:
    api = api_with_machines()
    api.reply = {"stdout": "", "stderr": "", "exit_code": 3}
    result = invoke(
        api, ["ssh", "console", "-a", "web", "--machine", "b2", "--timeout", "9", "-C", "false"]
    )
    assert result.exit_code == 3
    assert api.execs == [("/v1/apps/web/machines/b2/exec", {"command": ["false"], "timeout": 9})]


def test_select_lists_the_started_machines_and_runs_in_the_one_picked() -> None:
    api = api_with_machines()
    result = invoke(api, ["ssh", "console", "-a", "web", "-s", "-C", "id"], input="2\n")
    assert result.exit_code == 0, result.output
    assert "1) b2 sin" in result.stderr and "2) c3 iad" in result.stderr
    assert "a1" not in result.stderr
    assert api.execs[0][0] == "/v1/apps/web/machines/c3/exec"


def test_an_api_refusal_is_a_one_line_error() -> None:
    api = api_with_machines()
    api.status = 409
    api.reply = {
        "error": "machine b2 is stopped: commands run only in a started machine",
        "hint": None,
    }
    result = invoke(api, ["ssh", "console", "-a", "web", "--machine", "b2", "-C", "ls"])
    assert result.exit_code == 1
    assert "Error: machine b2 is stopped" in result.stderr


def test_the_console_address_is_a_websocket_url_with_the_size_and_the_users_token() -> None:
    client = FerryClient("https://api.example.test:4280/", "fo1_x_y")
    url, headers = client.console_address("web", "c3", cols=120, rows=40, command="bash -l")
    assert url == (
        "wss://api.example.test:4280/v1/apps/web/machines/c3/console?cols=120&rows=40&cmd=bash+-l"
    )
    assert headers == {"Authorization": "Bearer fo1_x_y"}
    plain, _ = FerryClient("http://127.0.0.1:4280", "t").console_address("a", "b", cols=1, rows=2)
    assert plain == "ws://127.0.0.1:4280/v1/apps/a/machines/b/console?cols=1&rows=2"


def test_choose_machine_and_split_command_refuse_clearly() -> None:
    machines = [Machine.model_validate(machine_json("x1", state="stopped"))]
    with pytest.raises(ValidationError, match="no started machine"):
        choose_machine(machines, None)
    with pytest.raises(ValidationError, match="'zz' is not one of this app's machines"):
        choose_machine(machines, "zz")
    with pytest.raises(ValidationError, match="cannot read the command"):
        split_command("echo 'open")
    with pytest.raises(ValidationError, match="the command is empty"):
        split_command("  ")
