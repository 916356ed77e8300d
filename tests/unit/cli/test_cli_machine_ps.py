"""`ferry machine ps ID` lists the machine's processes with their age; errors say why."""

from __future__ import annotations

import httpx

from tests.unit.cli.cli_fakes import FakeApi, invoke

PROCESSES = [
    {
        "pid": 4242,
        "stime": 1_700_000_000,
        "rtime": 12,
        "command": "sleep 1000",
        "directory": "/",
        "cpu": 0,
        "rss": 2 * 2**20,
        "listen_sockets": [],
    },
    {
        "pid": 4240,
        "stime": 1_700_000_000,
        "rtime": 12,
        "command": "httpd -p 8080",
        "directory": "/srv",
        "cpu": 3,
        "rss": 2**20,
        "listen_sockets": [{"proto": "tcp", "address": "0.0.0.0:8080"}],
    },
]


class PsApi(FakeApi):
    """The fake API plus ``GET …/ps`` (409 for a machine that is not started)."""

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/ps"):
            self.requests.append((request.method, path, dict(request.url.params)))
            machine = self.machines[path.split("/")[-2]]
            if machine["state"] != "started":
                error = {"error": f"machine {machine['id']} is stopped", "hint": "start it"}
                return httpx.Response(409, json=error)
            return httpx.Response(200, json=PROCESSES, headers={"Ferry-Ps-Age": "1.5"})
        return super().handle(request)


def test_ps_shows_each_process_and_how_old_the_list_is() -> None:
    api = PsApi()
    api.add_app("web")
    api.add_machine("aaa111")
    result = invoke(api, ["machine", "ps", "aaa111", "-a", "web", "--sort-by", "rss"])
    assert result.exit_code == 0, result.output
    assert "sleep 1000" in result.stdout and "httpd -p 8080" in result.stdout
    assert "0.0.0.0:8080" in result.stdout
    assert "2 processes, seen 1.5 s ago" in result.stdout
    query = {"sort_by": "rss", "order": "asc"}
    assert ("GET", "/v1/apps/web/machines/aaa111/ps", query) in api.requests


def test_ps_of_a_stopped_machine_says_to_start_it() -> None:
    api = PsApi()
    api.add_app("web")
    api.add_machine("aaa111", state="stopped")
    result = invoke(api, ["machine", "ps", "aaa111", "-a", "web"])
    assert result.exit_code != 0
    assert "is stopped" in result.output and "start it" in result.output
