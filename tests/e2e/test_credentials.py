"""In the embedded cluster every agent and edge runs with its own credential, which can do
that host's or region's work and nothing more; the admin token stays with the operator."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from ferry.client import FerryClient
from ferry.cluster.settings import ClusterSettings
from ferry.model import HostStatus

from .conftest import cluster_pid


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").partition("=") for item in raw if item)
    return {key: value for key, _, value in pairs}


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")


def test_each_agent_and_edge_runs_with_its_own_credential(
    cluster: ClusterSettings, client: FerryClient
) -> None:
    admin = cluster.token_path.read_text().strip()
    kept: dict[str, str] = {}
    for host in cluster.plan.hosts:
        path = cluster.host_dir(host.host_id) / "credential"
        pid = cluster_pid(cluster, "agent", "--host-id", host.host_id)
        assert pid is not None, host.host_id
        kept[host.host_id] = path.read_text().strip()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert _environ(pid).get("FERRY_API_TOKEN") == kept[host.host_id]
        assert kept[host.host_id] not in _cmdline(pid)
    for region in cluster.regions:
        path = cluster.home / "edges" / region / "credential"
        pid = cluster_pid(cluster, "proxy", "--region", region)
        assert pid is not None, region
        kept[region] = path.read_text().strip()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert _environ(pid).get("FERRY_API_TOKEN") == kept[region]
        assert kept[region] not in _cmdline(pid)
    assert admin not in kept.values()
    assert len(set(kept.values())) == len(kept)
    # The agents registered and keep heartbeating with theirs.
    assert all(h.status is HostStatus.UP for h in client.hosts())


def test_a_hosts_or_edges_credential_cannot_act_for_the_platform_or_another_host(
    cluster: ClusterSettings, client: FerryClient
) -> None:
    first, second = cluster.plan.hosts[0], cluster.plan.hosts[1]
    host = (cluster.host_dir(first.host_id) / "credential").read_text().strip()
    edge = (cluster.home / "edges" / cluster.regions[0] / "credential").read_text().strip()
    before = {app.name for app in client.list_apps()}
    with httpx.Client(base_url=cluster.api_url, timeout=10) as http:
        for token in (host, edge):
            made = http.post(
                "/v1/apps",
                json={"app_name": "not-allowed", "org_slug": "personal"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert made.status_code in (403, 404), made.text
        as_host = {"Authorization": f"Bearer {host}"}
        other = http.get(f"/v1/hosts/{second.host_id}/machines?timeout=0", headers=as_host)
        assert other.status_code == 404, other.text
        impostor = http.post(
            "/v1/hosts",
            headers=as_host,
            json={
                "id": second.host_id,
                "region": second.region,
                "address": second.address,
                "cpus": 1,
                "memory_mb": 256,
                "machine_subnet": second.machine_subnet,
            },
        )
        assert impostor.status_code == 403, impostor.text
        own = http.get(f"/v1/hosts/{first.host_id}/machines?timeout=0", headers=as_host)
        assert own.status_code == 200, own.text
    assert {app.name for app in client.list_apps()} == before
    for region in cluster.regions:  # the edges were never refused
        log = (cluster.log_dir / f"proxy-{region}.log").read_text(errors="replace")
        for refusal in ("invalid token", "revoked", "may not", "only an edge", "not found"):
            assert refusal not in log, log[-2000:]
