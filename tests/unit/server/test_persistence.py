"""Desired state survives restarts: in-process on the same file, and a real server kill -9'd."""

from __future__ import annotations

from pathlib import Path

from ...server_process import ServerProcess
from .conftest import FakeClock, host_body, open_api


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
        assert (shown["desired_state"], shown["host_ip"]) == ("stopped", machine["host_ip"])
        assert api.client.get("/v1/apps/web").json()["machine_count"] == 1
        assert api.client.get("/v1/hosts").json()[0]["id"] == "ams-1"
        # Versions keep growing across restarts, so agents' `since` stays meaningful.
        assert api.create_machine()["revision"] == 1
        assert api.plane.store.resource_version() == 4


def test_real_server_killed_with_sigkill_loses_nothing(plane: ServerProcess) -> None:
    assert plane.token_file.stat().st_mode & 0o777 == 0o600
    with plane.http() as client:
        host = host_body(cpus=2, memory_mb=2048)
        assert client.post("/v1/hosts", json=host).status_code == 200
        assert client.post("/v1/apps", json={"app_name": "web"}).status_code == 201
        created = client.post("/v1/apps/web/machines", json={"config": {"image": "x"}})
        assert created.status_code == 200
    plane.kill_9()

    plane.start()
    with plane.http() as client:
        assert client.get("/v1/apps/web").json()["machine_count"] == 1
        machines = client.get("/v1/apps/web/machines").json()
        assert [m["id"] for m in machines] == [created.json()["id"]]
        assert machines[0]["desired_state"] == "started"
    assert plane.terminate() == 0
