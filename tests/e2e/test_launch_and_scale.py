"""A new user's first minutes: `ferry launch` a project with its own Dockerfile, then resize it.

The project is the demo (busybox httpd, FROM scratch, EXPOSE 8080) without its
fly.toml: launch must find the port, write fly.toml, create the app and
deploy it; `scale vm` must then give the running machine a new size (its
cgroup's memory limit changes) while it keeps answering.
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.cluster.settings import ClusterSettings
from ferry.model import Machine, MachineState
from tests.e2e.conftest import demo_dir, ferry

pytestmark = pytest.mark.e2e

APP = "launched"


def _answer(cluster: ClusterSettings) -> str:
    """What a client in ams gets from the app through the edge (a machine that was just
    replaced may take a moment to be routed to: tried for up to 15 s)."""
    deadline = time.monotonic() + 15
    body = ""
    while time.monotonic() < deadline:
        result = ferry(
            cluster, "region", "exec", "ams", "--", "curl", "-s", "-m", "3",
            f"http://{APP}.ferry.test/",
        )  # fmt: skip
        body = result.stdout
        if "Hello from Ferry" in body:
            return body
        time.sleep(0.3)
    return body


def _memory_limit_mb(cluster: ClusterSettings, machine: Machine) -> int:
    """The memory limit of the machine's container, read from its cgroup (v1)."""
    container = f"{machine.id}-{machine.instance_id}"
    pid_file = cluster.host_dir(machine.host_id) / "runtime" / "containers" / container / "pid"
    pid = int(pid_file.read_text().strip())
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            limit = Path(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read_text()
            return int(limit) // (1024 * 1024)
    raise AssertionError(f"no memory cgroup for pid {pid}")


@pytest.fixture(scope="module")
def launched(
    cluster: ClusterSettings, client: FerryClient, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    project = demo_dir(tmp_path_factory.mktemp("launch"))
    (project / "fly.toml").unlink()
    result = ferry(cluster, "launch", "--name", APP, "--region", "ams", "--yes", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    return project


def test_launch_writes_fly_toml_creates_and_deploys_the_app(
    cluster: ClusterSettings, client: FerryClient, launched: Path, tmp_path: Path
) -> None:
    written = tomllib.loads((launched / "fly.toml").read_text())
    assert written["app"] == APP and written["primary_region"] == "ams"
    assert written["http_service"]["internal_port"] == 8080  # from the Dockerfile's EXPOSE
    machines = client.list_machines(APP)
    assert [(m.region, m.state) for m in machines] == [("ams", MachineState.STARTED)]
    assert "region=ams" in _answer(cluster)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    again = ferry(cluster, "launch", "--name", APP, "--no-deploy", cwd=tmp_path)
    assert again.returncode == 1 and f"an app named '{APP}' already exists" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dockerfile"]


def test_scale_vm_resizes_the_running_machine(
    cluster: ClusterSettings, client: FerryClient, launched: Path
) -> None:
    [before] = client.list_machines(APP)
    assert _memory_limit_mb(cluster, before) == 256
    result = ferry(cluster, "scale", "vm", "shared-cpu-2x", cwd=launched)
    assert result.returncode == 0, result.stdout + result.stderr
    [after] = client.list_machines(APP)
    assert after.id == before.id and after.instance_id != before.instance_id
    assert after.state is MachineState.STARTED
    guest = after.config.effective_guest
    assert (guest.cpu_kind, guest.cpus, guest.memory_mb) == ("shared", 2, 512)
    assert _memory_limit_mb(cluster, after) == 512
    assert "region=ams" in _answer(cluster)
    shown = ferry(cluster, "config", "show", "-a", APP)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["vm"] == [{"cpu_kind": "shared", "cpus": 2, "memory_mb": 512}]


def test_bad_sizes_are_refused_and_change_nothing(
    cluster: ClusterSettings, client: FerryClient, launched: Path
) -> None:
    [before] = client.list_machines(APP)
    unknown = ferry(cluster, "scale", "vm", "shared-cpu-3x", "-a", APP)
    assert unknown.returncode == 1 and "unknown machine size 'shared-cpu-3x'" in unknown.stderr
    too_much = ferry(cluster, "scale", "memory", "8192", "-a", APP)
    assert too_much.returncode == 1
    assert "outside what shared-cpu-2x allows (512-4096 MB)" in too_much.stderr
    [after] = client.list_machines(APP)
    assert after.instance_id == before.instance_id and after.config == before.config
