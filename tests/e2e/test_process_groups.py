"""A two-group app (web + worker) on the real cluster: each group runs its own command,
only web machines get the service and its [[files]], and counts are scaled per group."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.cluster.settings import ClusterSettings
from ferry.deploy.plan import machine_group
from ferry.model import Machine, MachineState
from tests.e2e.conftest import demo_dir, ferry

pytestmark = pytest.mark.e2e

FILE_TEXT = "served from a [[files]] entry of the web group"
FLY_TOML = f"""
app = "groups"
primary_region = "ams"

[build]
  dockerfile = "Dockerfile"

[experimental]
  entrypoint = ["/bin/busybox"]

[processes]
  web = "httpd -f -p 8080 -h /www"
  worker = "sh -c 'echo worker is $FLY_PROCESS_GROUP; exec /bin/busybox sleep 3600'"

[http_service]
  internal_port = 8080
  processes = ["web"]

[[files]]
  guest_path = "/www/group.txt"
  raw_value = "{base64.b64encode(FILE_TEXT.encode()).decode()}"
  processes = ["web"]

[[restart]]
  policy = "always"
  processes = ["worker"]
"""


def by_group(machines: list[Machine]) -> dict[str, list[Machine]]:
    groups: dict[str, list[Machine]] = {}
    for machine in machines:
        if machine.state is MachineState.STARTED:
            groups.setdefault(machine_group(machine), []).append(machine)
    return groups


def edge_get(cluster: ClusterSettings, path: str) -> str:
    url = f"http://groups.ferry.test{path}"
    result = ferry(cluster, "region", "exec", "ams", "--", "curl", "-s", "-m", "5", url)
    return result.stdout


def wait_answer(cluster: ClusterSettings, path: str, expected: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while True:
        body = edge_get(cluster, path)
        if expected in body or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


@pytest.fixture(scope="module")
def app_dir(cluster: ClusterSettings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = demo_dir(tmp_path_factory.mktemp("groups"))
    (directory / "fly.toml").write_text(FLY_TOML)
    return directory


def test_a_service_naming_a_group_that_does_not_exist_is_refused_before_anything_changes(
    cluster: ClusterSettings, client: FerryClient, tmp_path: Path
) -> None:
    directory = demo_dir(tmp_path)
    (directory / "fly.toml").write_text(
        FLY_TOML.replace('processes = ["web"]', 'processes = ["wbe"]', 1)
    )

    result = ferry(cluster, "deploy", cwd=directory)

    assert result.returncode != 0
    assert 'names the process group "wbe", which [processes] does not define' in result.stderr
    assert all(app.name != "groups" for app in client.list_apps())


def test_two_groups_deploy_and_scale_per_group(
    cluster: ClusterSettings, client: FerryClient, app_dir: Path
) -> None:
    deployed = ferry(cluster, "deploy", cwd=app_dir)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    groups = by_group(client.list_machines("groups"))
    assert {name: len(ms) for name, ms in groups.items()} == {"web": 1, "worker": 1}

    scaled = ferry(cluster, "scale", "count", "web=2", "worker=1", "-a", "groups", "--yes")
    assert scaled.returncode == 0, scaled.stdout + scaled.stderr
    assert "groups already runs 1 worker machines in ams" in scaled.stdout

    groups = by_group(client.list_machines("groups"))
    web, worker = groups["web"], groups["worker"]
    assert (len(web), len(worker)) == (2, 1)
    assert all(m.config.init.cmd == ["httpd", "-f", "-p", "8080", "-h", "/www"] for m in web)
    assert all(m.config.env["FLY_PROCESS_GROUP"] == "web" and m.config.services for m in web)
    assert [m.config.files[0].guest_path for m in web] == ["/www/group.txt"] * 2
    [work] = worker
    assert work.config.init.cmd is not None and work.config.init.cmd[0] == "sh"
    assert work.config.services == [] and work.config.files == []
    assert (work.config.restart.policy, work.config.env["FLY_PROCESS_GROUP"]) == (
        "always",
        "worker",
    )

    # The edge routes only to machines with services: every answer comes from a web machine.
    assert FILE_TEXT in wait_answer(cluster, "/group.txt", FILE_TEXT)
    web_ids = {m.id for m in web}
    answered = {edge_get(cluster, "/").split("machine=")[-1].split()[0] for _ in range(8)}
    assert answered <= web_ids, f"answers from {answered}, web machines are {web_ids}"

    bare = ferry(cluster, "scale", "count", "3", "-a", "groups", "--yes")
    assert bare.returncode != 0
    assert "several process groups (web, worker)" in bare.stderr
    unknown = ferry(cluster, "scale", "count", "wrker=1", "-a", "groups", "--yes")
    assert unknown.returncode != 0 and "unknown process group 'wrker'" in unknown.stderr
    assert len(client.list_machines("groups")) == 3

    # A second deploy updates every machine of both groups and adds none.
    before = {m.id: m.instance_id for m in client.list_machines("groups")}
    again = ferry(cluster, "deploy", cwd=app_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    after = {m.id: m.instance_id for m in client.list_machines("groups")}
    assert set(after) == set(before)
    assert all(after[mid] != before[mid] for mid in before)
