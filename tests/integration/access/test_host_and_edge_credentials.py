"""Each agent and edge has its own credential: what the supervisor mints and keeps, and
what a real control plane lets each do with it (its own host's or region's work only)."""

from __future__ import annotations

import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.cluster.credentials import CredentialKeeper, CredentialSpec
from ferry.cluster.processes import Child
from ferry.cluster.settings import ClusterSettings
from ferry.cluster.supervisor import Supervisor
from ferry.errors import ApiError
from ferry.model import MachineConfig
from ferry.model.processes import MachineProcesses

from ...server_process import ServerProcess


def _register(client: FerryClient, host_id: str, region: str, subnet: str) -> None:
    client.register_host(
        host_id=host_id,
        region=region,
        address="127.0.0.1",
        cpus=2,
        memory_mb=2048,
        machine_subnet=subnet,
    )


def _refused(call: Callable[[], object]) -> int:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value.status


def test_each_credential_does_its_own_hosts_or_edges_work_and_nothing_else(
    plane: ServerProcess, tmp_path: Path
) -> None:
    keeper = CredentialKeeper(plane.url, plane.token)
    ams = CredentialSpec.host("ams-1", "ams", tmp_path / "hosts" / "ams-1")
    iad = CredentialSpec.host("iad-1", "iad", tmp_path / "hosts" / "iad-1")
    edge_spec = CredentialSpec.edge("ams", tmp_path / "edges" / "ams")
    tokens = {spec.name: keeper.ensure(spec) for spec in (ams, iad, edge_spec)}
    for spec in (ams, iad, edge_spec):
        assert stat.S_IMODE(spec.path.stat().st_mode) == 0o600
        assert spec.path.read_text().strip() == tokens[spec.name]
    assert len(set(tokens.values()) | {plane.token}) == 4

    admin = plane.client()
    host_a = FerryClient(plane.url, tokens["host ams-1"], timeout=10)
    host_b = FerryClient(plane.url, tokens["host iad-1"], timeout=10)
    edge = FerryClient(plane.url, tokens["edge ams"], timeout=10)

    # What an agent does, with its own credential.
    _register(host_a, "ams-1", "ams", "10.1.1.0/24")
    _register(host_b, "iad-1", "iad", "10.1.2.0/24")
    host_a.heartbeat("ams-1")
    admin.create_app("web")
    machine = admin.create_machine("web", MachineConfig(image="reg/web:1"), region="ams")
    assert machine.host_id == "ams-1"
    _, mine = host_a.watch_host_machines("ams-1", timeout=0)
    assert [m.id for m in mine] == [machine.id]
    host_a.report_status("ams-1", machine.id, "started", machine.instance_id, "start", "started")
    host_a.upload_logs("ams-1", machine.id, ["hello"])
    host_a.report_processes(
        "ams-1", {machine.id: MachineProcesses(instance_id=machine.instance_id, processes=[])}
    )

    # What it may not do: the platform's work, another host's.
    assert _refused(lambda: host_a.create_app("evil")) in (403, 404)
    assert _refused(lambda: host_b.watch_host_machines("ams-1", timeout=0)) == 404
    assert (
        _refused(
            lambda: host_b.report_status(
                "ams-1", machine.id, "stopped", machine.instance_id, "stop", "stopped"
            )
        )
        == 404
    )
    assert _refused(lambda: host_b.upload_logs("ams-1", machine.id, ["forged"])) == 404
    assert _refused(lambda: _register(host_b, "ams-1", "ams", "10.1.1.0/24")) == 403
    assert _refused(lambda: host_a.list_machines("web")) == 404
    assert _refused(lambda: host_a.watch_routes(timeout=0)) == 403
    assert [app.name for app in admin.list_apps()] == ["web"]

    # What an edge does: routes, its region's traffic, waking a machine.
    _, routed = edge.watch_routes(timeout=0)
    assert machine.id in {m.id for m in routed}
    edge.report_traffic("ams", {"window_seconds": 1.0, "apps": {}})
    admin.stop_machine("web", machine.id)
    edge.start_machine("web", machine.id)
    # ... and what it may not.
    assert _refused(lambda: edge.create_app("evil")) in (403, 404)
    assert _refused(lambda: edge.report_traffic("iad", {"window_seconds": 1.0, "apps": {}})) == 403
    assert _refused(lambda: edge.watch_host_machines("ams-1", timeout=0)) == 404
    assert _refused(lambda: edge.list_machines("web")) == 404
    assert _refused(lambda: edge.stop_machine("web", machine.id)) == 404
    assert [app.name for app in admin.list_apps()] == ["web"]


def test_a_kept_credential_is_reused_and_a_refused_or_deleted_one_is_replaced(
    plane: ServerProcess, tmp_path: Path
) -> None:
    keeper = CredentialKeeper(plane.url, plane.token)
    spec = CredentialSpec.host("ams-1", "ams", tmp_path / "ams-1")
    first = keeper.ensure(spec)
    assert keeper.ensure(spec) == first  # a supervisor restart keeps it

    token_id = first.split("_")[1]
    with plane.http() as http:
        assert http.delete(f"/v1/tokens/{token_id}").status_code == 200
    second = keeper.ensure(spec)  # 401 for the kept one: a new one
    assert second != first
    assert spec.path.read_text().strip() == second
    assert not keeper.accepted(first)

    spec.path.unlink()  # rotation: delete the file, restart
    third = keeper.ensure(spec)
    assert third != second
    assert not keeper.accepted(second)  # the previous one is retired
    assert keeper.accepted(third)


_CHILD = """
import os, sys, time
from pathlib import Path
token = os.environ.get("FERRY_API_TOKEN", "")
cmdline = Path("/proc/self/cmdline").read_bytes().decode()
kept = Path(sys.argv[1]).read_text().strip()
ok = token == kept and token not in cmdline and "FLY_API_TOKEN" not in os.environ
Path(sys.argv[2]).write_text(("ok " if ok else "bad ") + str(os.getpid()))
time.sleep(60)
"""


def test_the_supervisor_gives_a_child_its_own_credential_and_replaces_a_revoked_one(
    plane: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLY_API_TOKEN", plane.token)  # as if the operator had it set
    settings = ClusterSettings(home=tmp_path / "cluster", api_port=plane.port)
    supervisor = Supervisor(settings)
    supervisor.keeper = CredentialKeeper(plane.url, plane.token)
    spec = CredentialSpec.host("ams-1", "ams", settings.host_dir("ams-1"))
    seen = tmp_path / "seen"
    argv = [sys.executable, "-c", _CHILD, str(spec.path), str(seen)]
    try:
        supervisor.add_with_credential(
            Child("agent-ams-1", argv, settings.log_dir / "agent.log"), spec
        )
        first = _wait_line(seen)
        assert first.startswith("ok "), first

        supervisor.refresh_credentials(["agent-ams-1"])  # still accepted: left alone
        assert _wait_line(seen) == first

        token_id = spec.path.read_text().strip().split("_")[1]
        with plane.http() as http:
            assert http.delete(f"/v1/tokens/{token_id}").status_code == 200
        seen.unlink()
        supervisor.refresh_credentials(["agent-ams-1"])
        second = _wait_line(seen)
        assert second.startswith("ok ") and second != first  # restarted, with the new one
        assert spec.path.read_text().split("_")[1] != token_id
    finally:
        supervisor.group.stop("agent-ams-1", timeout=5)


def _wait_line(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text()):
            return text
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written in {timeout} s")
