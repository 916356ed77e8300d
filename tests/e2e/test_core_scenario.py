"""The core scenario, as a user lives it.

cluster up → deploy the demo to three regions → each machine answers from its
region → a killed container is restarted by its policy → a killed agent comes
back and adopts its machines: no duplicates, no orphans → cluster down leaves
nothing behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.cluster.lifecycle import log_tail
from ferry.cluster.settings import ClusterSettings
from ferry.model import Machine, MachineState
from tests.e2e.conftest import cluster_pid, demo_dir, ferry

pytestmark = pytest.mark.e2e

REGIONS = ("ams", "iad", "sin")


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def curl_from(cluster: ClusterSettings, region: str, url: str) -> str:
    result = ferry(cluster, "region", "exec", region, "--", "curl", "-s", "-m", "3", url)
    return result.stdout


def container_pid(cluster: ClusterSettings, m: Machine) -> int:
    pid_file = (
        cluster.host_dir(m.host_id) / "runtime" / "containers" / f"{m.id}-{m.instance_id}" / "pid"
    )
    return int(pid_file.read_text().strip())


def containers_on(cluster: ClusterSettings, host_id: str) -> list[str]:
    root = cluster.host_dir(host_id) / "runtime" / "containers"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.fixture(scope="module")
def deployed(cluster: ClusterSettings, tmp_path_factory: pytest.TempPathFactory) -> list[Machine]:
    app_dir = demo_dir(tmp_path_factory.mktemp("app"))
    result = ferry(cluster, "deploy", "--regions", ",".join(REGIONS), cwd=app_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    token = cluster.token_path.read_text().strip()
    with FerryClient(cluster.api_url, token) as c:
        return c.list_machines("hello")


def test_deploy_puts_one_started_machine_in_each_region(deployed: list[Machine]) -> None:
    assert sorted(m.region for m in deployed) == sorted(REGIONS)
    assert all(m.state is MachineState.STARTED for m in deployed)


def test_each_machine_answers_from_its_region(
    cluster: ClusterSettings, deployed: list[Machine]
) -> None:
    for m in deployed:
        body = curl_from(cluster, m.region, f"http://{m.host_ip}:8080/")
        assert f"region={m.region}" in body
        assert f"machine={m.id}" in body


def test_machines_reach_each_other_across_regions(
    cluster: ClusterSettings, deployed: list[Machine]
) -> None:
    by_region = {m.region: m for m in deployed}
    body = curl_from(cluster, "sin", f"http://{by_region['ams'].host_ip}:8080/")
    assert "region=ams" in body


def test_killed_container_is_restarted_by_policy(
    cluster: ClusterSettings, client: FerryClient, deployed: list[Machine]
) -> None:
    m = next(x for x in deployed if x.region == "iad")
    old_pid = container_pid(cluster, m)
    os.kill(old_pid, signal.SIGKILL)
    restarted = wait_for(
        lambda: (
            (x := client.get_machine("hello", m.id)).restart_count >= 1
            and x.state is MachineState.STARTED
            and container_pid(cluster, x) != old_pid
            and x
        ),
        30,
        "the killed machine to be restarted",
    )
    assert restarted.restart_count == 1
    events = client.machine_events("hello", m.id)
    assert any(e.type == "restart" for e in events)
    assert "region=iad" in wait_for(
        lambda: curl_from(cluster, "iad", f"http://{m.host_ip}:8080/"), 15, "an answer"
    )


def test_restarted_agent_adopts_its_machines(
    cluster: ClusterSettings, client: FerryClient, deployed: list[Machine]
) -> None:
    m = next(x for x in deployed if x.region == "ams")
    before = containers_on(cluster, m.host_id)
    pid_before = container_pid(cluster, client.get_machine("hello", m.id))
    agent_pid = agent_pid_of(m.host_id, cluster)
    assert agent_pid is not None, log_tail(cluster, f"agent-{m.host_id}")
    agent_log = cluster.log_dir / f"agent-{m.host_id}.log"
    seen = agent_log.stat().st_size
    on_host = [
        x.id
        for x in client.list_machines("hello")
        if x.host_id == m.host_id and x.state is MachineState.STARTED
    ]
    os.kill(agent_pid, signal.SIGKILL)
    wait_for(lambda: agent_pid_of(m.host_id, cluster) not in (None, agent_pid), 30, "a new agent")
    # The new agent's first cycle adopts (and logs) each running machine before it plans:
    # had it not adopted one, that cycle would have started a duplicate instead.
    wait_for(
        lambda: all(
            f"adopted running machine {mid}".encode() in agent_log.read_bytes()[seen:]
            for mid in on_host
        ),
        30,
        "the new agent adopting every machine of its host",
    )
    assert containers_on(cluster, m.host_id) == before  # no duplicates, no orphans
    assert container_pid(cluster, client.get_machine("hello", m.id)) == pid_before  # adopted
    assert "region=ams" in curl_from(cluster, "ams", f"http://{m.host_ip}:8080/")


def agent_pid_of(host_id: str, cluster: ClusterSettings) -> int | None:
    return cluster_pid(cluster, "agent", "--host-id", host_id)


def test_cluster_down_leaves_nothing_behind(tmp_path: Path) -> None:
    from ferry.cluster.ephemeral import ephemeral_cluster
    from ferry.net.iproute import list_netns

    with ephemeral_cluster(("ams",), octet=181) as settings:
        prefix, home = settings.prefix, settings.home
        assert list_netns(f"{prefix}-")
    assert list_netns(f"{prefix}-") == []
    assert str(home) not in Path("/proc/mounts").read_text()
    ps = subprocess.run(["ps", "-ww", "-eo", "args="], capture_output=True, text=True).stdout
    assert str(home) not in ps
    assert not home.exists()
