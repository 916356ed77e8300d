"""Capacity follows demand, through the real edge and the real autoscaler.

Scale to zero and wake under traffic; a traffic shift from ams to sin makes
machines appear in sin and ams shrink, with no failed request; a full region
falls back to the nearest one with room, and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.cluster.settings import ClusterSettings
from ferry.errors import FerryError
from ferry.model import Machine, MachineState
from tests.e2e.conftest import demo_dir, ferry
from tests.e2e.test_edge import Load, curl, wait_routable

pytestmark = pytest.mark.e2e


def deploy_with(
    cluster: ClusterSettings,
    tmp: Path,
    app: str,
    regions: str,
    extra: str = "",
    changes: dict[str, str] | None = None,
) -> None:
    """Deploy the demo as ``app``, its fly.toml edited by ``changes`` (old -> new) and ``extra``."""
    app_dir = demo_dir(tmp)
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', f'app = "{app}"')
    for old, new in (changes or {}).items():
        assert old in toml, old
        toml = toml.replace(old, new)
    (app_dir / "fly.toml").write_text(toml + extra)
    result = ferry(cluster, "deploy", "--regions", regions, cwd=app_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def started_in(client: FerryClient, app: str, region: str) -> list[Machine]:
    return [
        m
        for m in client.list_machines(app)
        if m.region == region and m.state is MachineState.STARTED
    ]


def test_idle_machines_scale_to_zero_and_a_request_wakes_one(
    cluster: ClusterSettings, client: FerryClient, tmp_path: Path
) -> None:
    autostop = {
        'auto_stop_machines = "off"': 'auto_stop_machines = "stop"',
        "min_machines_running = 1": "min_machines_running = 0",
    }
    policy = '\n[autoscale]\n  regions = ["iad"]\n  stop_idle_after = "3s"\n'
    deploy_with(cluster, tmp_path, "naps", "iad", policy, autostop)
    wait_routable(cluster, "iad", "naps")
    wait_until(lambda: not started_in(client, "naps", "iad"), 40, "the idle machine to stop")
    (m,) = client.list_machines("naps")
    assert any(e.type == "autoscale" for e in client.machine_events("naps", m.id))
    answer = curl(cluster, "iad", "-w", " %{http_code}", "http://naps.ferry.test/")
    assert answer.stdout.endswith(" 200") and "region=iad" in answer.stdout


def test_a_traffic_shift_moves_capacity_from_ams_to_sin(
    cluster: ClusterSettings, client: FerryClient, tmp_path: Path
) -> None:
    policy = (
        "\n[autoscale]\n"
        '  regions = ["ams", "sin"]\n  min_per_region = 0\n  max_per_region = 2\n'
        '  max_total = 4\n  target_concurrency = 1\n  scale_out_after = "2s"\n'
        '  scale_in_after = "4s"\n  destroy_after = "60s"\n'
    )
    deploy_with(cluster, tmp_path, "shift", "ams", policy)
    wait_routable(cluster, "ams", "shift")
    url = "http://shift.ferry.test/cgi-bin/slow.cgi?0.3"

    loads = [Load(cluster, "ams", url, 12) for _ in range(3)]
    wait_until(lambda: len(started_in(client, "shift", "ams")) >= 2, 25, "a second machine in ams")
    results = [load.result() for load in loads]

    loads = [Load(cluster, "sin", url, 25) for _ in range(3)]
    wait_until(lambda: started_in(client, "shift", "sin"), 25, "machines in sin")
    wait_until(lambda: len(started_in(client, "shift", "ams")) <= 1, 25, "ams to shrink")
    results += [load.result() for load in loads]

    assert all(r["failed"] == 0 for r in results), results
    status = ferry(cluster, "autoscale", "status", "-a", "shift")
    assert status.returncode == 0 and "sin" in status.stdout


def test_a_full_region_falls_back_to_the_nearest_with_room(
    cluster: ClusterSettings, client: FerryClient, tmp_path: Path
) -> None:
    big = {'memory = "128mb"': 'memory = "1536mb"'}
    more_than_fits = str(cluster.host_memory_mb // 1536 + 1)  # one host per region
    deploy_with(cluster, tmp_path, "big", "iad", changes=big)
    try:
        result = ferry(
            cluster, "scale", "count", more_than_fits, "--region", "iad", "-a", "big", "--yes"
        )
        assert result.returncode == 0, result.stdout + result.stderr
        elsewhere = [m for m in client.list_machines("big") if m.region != "iad"]
        assert elsewhere, result.stdout
        assert "no host in region iad has room" in result.stdout
        assert "iad has no room for more" in result.stdout
        first = min(elsewhere, key=lambda m: m.created_at)
        assert first.region == "ams"  # the nearest to iad: ams 84 ms, sin 224 ms
    finally:  # give the memory back: other scenarios share this cluster
        client.delete_app("big", force=True)
        wait_until(lambda: not big_machines_left(client), 30, "app big to be destroyed")


def big_machines_left(client: FerryClient) -> bool:
    try:
        return any(m.state is not MachineState.DESTROYED for m in client.list_machines("big"))
    except FerryError:
        return False  # the app is gone
