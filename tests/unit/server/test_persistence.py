"""Desired state survives restarts: in-process on the same file, and a real server kill -9'd."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import FakeClock, open_api


def test_restarted_app_on_the_same_file_keeps_everything(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    for api in open_api(db, FakeClock()):
        api.register_host()
        api.create_app()
        machine = api.create_machine()
        stopped = api.client.post(f"/v1/apps/web/machines/{machine['id']}/stop")
        assert stopped.status_code == 200
    for api in open_api(db, FakeClock()):
        shown = api.client.get(f"/v1/apps/web/machines/{machine['id']}").json()
        assert (shown["desired_state"], shown["private_ip"]) == ("stopped", machine["private_ip"])
        assert api.client.get("/v1/apps/web").json()["machine_count"] == 1
        assert api.client.get("/v1/hosts").json()[0]["id"] == "ams-1"
        # Versions keep growing across restarts, so agents' `since` stays meaningful.
        assert api.create_machine()["revision"] == 1
        assert api.plane.store.resource_version() == 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from pathlib import Path; from ferry.server import run_server; "
        "run_server(Path(sys.argv[1]), [sys.argv[2]], log_level='warning')"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(home), f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError("server did not become healthy in 20 s")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_real_server_killed_with_sigkill_loses_nothing(
    server_home: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    processes.append(_start_server(server_home, port))
    _wait_healthy(url, processes[0])
    token_file = server_home / "server" / "admin-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    with httpx.Client(base_url=url, headers=headers, timeout=5) as client:
        host = {
            "id": "ams-1",
            "region": "ams",
            "address": "10.0.0.2",
            "cpus": 2,
            "memory_mb": 2048,
            "machine_subnet": "10.1.0.0/24",
        }
        assert client.post("/v1/hosts", json=host).status_code == 200
        assert client.post("/v1/apps", json={"app_name": "web"}).status_code == 201
        created = client.post("/v1/apps/web/machines", json={"config": {"image": "x"}})
        assert created.status_code == 200
    os.kill(processes[0].pid, signal.SIGKILL)
    processes[0].wait(timeout=10)

    processes.append(_start_server(server_home, port))
    _wait_healthy(url, processes[1])
    with httpx.Client(base_url=url, headers=headers, timeout=5) as client:
        assert client.get("/v1/apps/web").json()["machine_count"] == 1
        machines = client.get("/v1/apps/web/machines").json()
        assert [m["id"] for m in machines] == [created.json()["id"]]
        assert machines[0]["desired_state"] == "started"
    processes[1].send_signal(signal.SIGTERM)
    assert processes[1].wait(timeout=15) == 0
