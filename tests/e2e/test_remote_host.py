"""A host on another network joins with a join token and serves machines over WireGuard.

The cluster of this module has a host in sin that shares nothing with the rest
but the WAN: its namespace hangs off the core, which lets it reach only the
control plane's address and WireGuard ports (`ferry cluster up --remote-host sin`).
The supervisor joins it exactly as an operator joins a server: a join token,
then `ferry host join`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster
from ferry.cluster.settings import ClusterSettings
from ferry.model import Machine, MachineConfig
from tests.e2e.test_edge import deploy_demo
from tests.e2e.test_private_network import fetch

pytestmark = pytest.mark.e2e

REMOTE = "sin-remote"


@pytest.fixture(scope="module")
def remote_cluster() -> Iterator[ClusterSettings]:
    with ephemeral_cluster(("ams", "sin"), octet=183, remote_hosts=("sin",)) as settings:
        yield settings


@pytest.fixture(scope="module")
def remote_client(remote_cluster: ClusterSettings) -> Iterator[FerryClient]:
    token = remote_cluster.token_path.read_text().strip()
    with FerryClient(remote_cluster.api_url, token) as client:
        yield client


@pytest.fixture(scope="module")
def far(
    remote_cluster: ClusterSettings,
    remote_client: FerryClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Machine]:
    """App `far`: one machine in ams, one on the remote host (none on sin-1)."""
    deploy_demo(remote_cluster, tmp_path_factory.mktemp("far"), "far", "ams")
    config: MachineConfig = remote_client.list_machines("far")[0].config
    placed: Machine | None = None
    for _ in range(6):  # the scheduler spreads sin's machines over its two hosts
        machine = remote_client.create_machine("far", config, region="sin")
        if machine.host_id == REMOTE:
            placed = machine
            break
        remote_client.delete_machine("far", machine.id, force=True)
    assert placed is not None, "no machine of far landed on the remote host"
    assert remote_client.wait_machine("far", placed.id, timeout=90) == "started"
    machines = {m.region: m for m in remote_client.list_machines("far")}
    machines["sin"] = remote_client.get_machine("far", placed.id)
    return machines


def test_the_remote_host_joined_with_a_token_and_is_up(remote_client: FerryClient) -> None:
    hosts = {h.id: h for h in remote_client.hosts()}
    assert hosts[REMOTE].region == "sin" and hosts[REMOTE].status.value == "up"
    used = [t for t in remote_client.list_join_tokens() if t.used_by == REMOTE]
    assert len(used) == 1


def test_a_client_in_ams_reaches_the_remote_hosts_machine_through_the_edge(
    remote_cluster: ClusterSettings, remote_client: FerryClient, far: dict[str, Machine]
) -> None:
    seen = set()
    for _ in range(5):
        done = subprocess.run(
            ["ip", "netns", "exec", remote_cluster.plan.region("ams").netns, "curl", "-sS",
             "-m", "10", "-H", "Host: far.ferry.test", "-H", "Fly-Prefer-Region: sin",
             f"http://{remote_cluster.plan.edge_address}/"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        seen.add(done.stdout.strip())
    assert seen == {f"Hello from Ferry! region=sin machine={far['sin'].id} app=far"}, seen


def test_the_remote_machine_and_others_talk_over_6pn_only(
    remote_cluster: ClusterSettings, remote_client: FerryClient, far: dict[str, Machine]
) -> None:
    remote = far["sin"]
    config = remote.config
    ams = remote_client.create_machine("far", config, region="ams")
    assert remote_client.wait_machine("far", ams.id, timeout=90) == "started"
    ams = remote_client.get_machine("far", ams.id)
    assert "region=ams" in fetch(remote_cluster, remote, f"http://[{ams.private_ip}]:8080/")
    assert "region=sin" in fetch(remote_cluster, ams, f"http://[{remote.private_ip}]:8080/")
    # no plain path: the remote host reaches no other host's machines over IPv4
    remote_netns = remote_cluster.plan.remote_hosts[0].netns
    plain = subprocess.run(
        ["ip", "netns", "exec", remote_netns, "curl", "-sS", "-m", "2", f"http://{ams.host_ip}:8080/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert plain.returncode != 0
