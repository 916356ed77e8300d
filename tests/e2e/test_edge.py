"""The edge, as users in three regions see it.

Clients sit in each region's network (``ferry region exec``); the name
``<app>.ferry.test`` leads each to its own region's proxy; regions are joined
by the emulated WAN (ams-sin 169 ms RTT).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.cluster.settings import ClusterSettings
from ferry.model import MachineState
from tests.e2e.conftest import cluster_pid, demo_dir, ferry

pytestmark = pytest.mark.e2e

LOADGEN = Path(__file__).with_name("loadgen.py")


def deploy_demo(cluster: ClusterSettings, tmp: Path, app: str, regions: str) -> Path:
    app_dir = demo_dir(tmp)
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', f'app = "{app}"')
    (app_dir / "fly.toml").write_text(toml)
    result = ferry(cluster, "deploy", "--regions", regions, cwd=app_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    return app_dir


@pytest.fixture(scope="module")
def web(
    cluster: ClusterSettings, client: FerryClient, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """App `web` in all three regions, two machines in ams."""
    app_dir = deploy_demo(cluster, tmp_path_factory.mktemp("web"), "web", "ams,iad,sin")
    result = ferry(cluster, "scale", "count", "2", "--region", "ams", "-a", "web", "--yes")
    assert result.returncode == 0, result.stderr
    wait_routable(cluster, "ams", "web")
    return app_dir


def wait_routable(cluster: ClusterSettings, region: str, app: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "region=" in curl(cluster, region, f"http://{app}.ferry.test/").stdout:
            return
        time.sleep(0.2)
    raise AssertionError(f"{app} never answered through the {region} edge")


def until_edge_sees(
    cluster: ClusterSettings, region: str, machine_id: str, state: str, timeout: float = 10
) -> None:
    """Until ``region``'s edge has ``machine_id`` in ``state`` in its routing table (the
    copy it keeps on disk, written on each change it receives)."""
    table = cluster.home / "edges" / region / "routes.json"
    deadline = time.monotonic() + timeout
    while True:
        try:
            machines = json.loads(table.read_text())["machines"]
        except (OSError, ValueError, KeyError):
            machines = []
        if any(m["id"] == machine_id and m["state"] == state for m in machines):
            return
        assert time.monotonic() < deadline, f"the {region} edge never saw {machine_id} {state}"
        time.sleep(0.05)


def curl(cluster: ClusterSettings, region: str, *args: str) -> subprocess.CompletedProcess[str]:
    return ferry(cluster, "region", "exec", region, "--", "curl", "-s", "-m", "5", *args)


def timed_gets(cluster: ClusterSettings, region: str, url: str, n: int) -> list[tuple[str, float]]:
    """n GETs over one keep-alive connection; (body, seconds) each."""
    fmt = "\\n@@%{time_total}\\n"
    out = curl(cluster, region, *([url, "-w", fmt] * n)).stdout
    results = []
    for chunk in out.split("@@")[1:]:
        seconds, _, _ = chunk.partition("\n")
        results.append(float(seconds))
    bodies = [part.rsplit("\n", 1)[0] for part in out.split("\n@@")]
    return list(zip(bodies, results, strict=False))


class Load:
    """A bounded load generator in a region, running while the test does something."""

    def __init__(self, cluster: ClusterSettings, region: str, url: str, seconds: float) -> None:
        argv = ["ip", "netns", "exec", cluster.plan.region(region).netns,
                sys.executable, str(LOADGEN), url, str(seconds)]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.ok = 0
        self._flowing = threading.Event()
        self._progress = threading.Thread(target=self._follow, daemon=True)
        self._progress.start()

    def _follow(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.startswith("ok "):
                self.ok = int(line.split()[1])
                if self.ok >= 20:
                    self._flowing.set()

    def wait_flowing(self, timeout: float = 15) -> None:
        """Until 20 requests of this load were answered 200 (fails after ``timeout``)."""
        assert self._flowing.wait(timeout), f"the load was not flowing within {timeout}s"

    def wait_more(self, count: int, timeout: float = 15) -> None:
        """Until ``count`` more requests than now were answered 200 (fails after ``timeout``)."""
        target = self.ok + count
        deadline = time.monotonic() + timeout
        while self.ok < target:
            assert time.monotonic() < deadline, f"the load stalled at {self.ok} answers"
            assert self.proc.poll() is None, "the load ended before it was stopped"
            time.sleep(0.05)  # polls the counter the reader thread keeps

    def stop(self) -> dict[str, object]:
        """End the load now (its request in flight is finished) and return its result."""
        self.proc.terminate()
        return self.result()

    def result(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.wait(timeout=60)
        self._progress.join(timeout=5)
        return dict(json.loads(out))


def test_each_region_is_served_by_its_own_machines(cluster: ClusterSettings, web: Path) -> None:
    for region in ("ams", "iad", "sin"):
        answers = timed_gets(cluster, region, "http://web.ferry.test/", 10)
        assert len(answers) == 10
        status = ferry(cluster, "status", "-a", "web").stdout
        assert all(f"region={region}" in body for body, _ in answers), (region, answers, status)
        head = curl(cluster, region, "-D", "-", "-o", "/dev/null", "http://web.ferry.test/").stdout
        request_id = next(line for line in head.lower().splitlines() if "fly-request-id" in line)
        assert request_id.endswith(f"-{region}")  # the edge that took the request


def test_unknown_app_gets_a_plain_404(cluster: ClusterSettings, web: Path) -> None:
    result = curl(cluster, "iad", "-w", "%{http_code}", "http://nothing.ferry.test/")
    assert result.stdout.endswith("404")
    assert "10.77" not in result.stdout and "Traceback" not in result.stdout


def test_an_app_only_in_ams_is_served_from_ams_at_wan_distance(
    cluster: ClusterSettings, web: Path, tmp_path: Path
) -> None:
    deploy_demo(cluster, tmp_path, "far", "ams")
    wait_routable(cluster, "sin", "far")
    answers = timed_gets(cluster, "sin", "http://far.ferry.test/", 6)
    assert all("region=ams" in body for body, _ in answers)
    p50 = statistics.median(seconds for _, seconds in answers[1:])  # pooled upstream
    rtt = cluster.latency.rtt_ms("ams", "sin") / 1000
    assert 0.9 * rtt <= p50 <= 1.3 * rtt, (p50, rtt)  # one round trip: the edges keep a backhaul
    local = statistics.median(
        s for _, s in timed_gets(cluster, "ams", "http://far.ferry.test/", 6)[1:]
    )
    assert local < 0.05  # in-region: no WAN delay


def test_fly_replay_sends_writes_to_the_primary_region(cluster: ClusterSettings, web: Path) -> None:
    body = curl(cluster, "sin", "http://web.ferry.test/cgi-bin/write.cgi").stdout
    assert "written in region=ams" in body
    assert "region=sin" in body  # fly-replay-src names where the request first landed


def test_metrics_and_status_show_traffic(cluster: ClusterSettings, web: Path) -> None:
    edge = cluster.plan.edge_address
    metrics = curl(cluster, "iad", f"http://{edge}:9091/metrics").stdout
    assert 'fly_edge_http_responses_count{app="web"' in metrics
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = ferry(cluster, "status", "-a", "web").stdout
        if "iad" in status and "2xx" in status:
            return
        time.sleep(1)
    raise AssertionError(f"ferry status shows no traffic per region:\n{status}")


@pytest.fixture
def server_pid(cluster: ClusterSettings) -> Iterator[int]:
    pid = find_pid(cluster, "server")
    yield pid
    os.kill(pid, signal.SIGCONT)  # never leave it stopped, also when the test fails


def find_pid(cluster: ClusterSettings, role: str, *words: str) -> int:
    pid = cluster_pid(cluster, role, *words)
    assert pid is not None, f"no {role} process of this cluster"
    return pid


def test_traffic_flows_while_the_control_plane_is_down(
    cluster: ClusterSettings, web: Path, server_pid: int
) -> None:
    os.kill(server_pid, signal.SIGSTOP)  # unreachable: accepts nothing, answers nothing
    during = Load(cluster, "iad", "http://web.ferry.test/", 3).result()
    assert during["failed"] == 0 and during["ok"], during

    proxy = find_pid(cluster, "proxy", "--region", "iad")
    os.kill(proxy, signal.SIGKILL)  # the supervisor restarts it; the control plane is still down
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        restarted = cluster_pid(cluster, "proxy", "--region", "iad") not in (None, proxy)
        if restarted and "region=iad" in curl(cluster, "iad", "http://web.ferry.test/").stdout:
            break
        time.sleep(0.2)
    after = Load(cluster, "iad", "http://web.ferry.test/", 1.5).result()
    assert after["failed"] == 0 and after["ok"], after  # routed from its copy on disk
    os.kill(server_pid, signal.SIGCONT)


def test_a_machine_killed_under_load_fails_no_request(
    cluster: ClusterSettings, client: FerryClient, web: Path
) -> None:
    ams = [m for m in client.list_machines("web") if m.region == "ams"]
    assert len(ams) == 2
    victim = ams[0]
    pid_file = (cluster.host_dir(victim.host_id) / "runtime" / "containers"
                / f"{victim.id}-{victim.instance_id}" / "pid")  # fmt: skip
    load = Load(cluster, "ams", "http://web.ferry.test/", 4)
    load.wait_flowing()
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    result = load.result()
    assert result["failed"] == 0, result
    assert result["ok"] > 50


def test_a_rolling_deploy_under_load_fails_no_request(
    cluster: ClusterSettings, client: FerryClient, web: Path
) -> None:
    toml = (web / "fly.toml").read_text()
    toml = toml.replace('GREETING = "hello from ferry"', 'GREETING = "v2"')
    # Two of the four machines at a time; never both of ams (the clients' region).
    (web / "fly.toml").write_text(toml + "\n[deploy]\n  max_unavailable = 2\n")
    load = Load(cluster, "ams", "http://web.ferry.test/", 8)
    load.wait_flowing()
    result = ferry(cluster, "deploy", cwd=web)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to 2 at a time" in result.stdout, result.stdout
    stats = load.result()
    assert stats["failed"] == 0, stats
    machines = client.list_machines("web")
    assert all(m.state is MachineState.STARTED for m in machines)
    assert all(m.config.env.get("GREETING") == "v2" for m in machines)


def test_requests_over_the_hard_limit_go_to_the_next_nearest_region(
    cluster: ClusterSettings, tmp_path: Path
) -> None:
    app_dir = demo_dir(tmp_path)
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', 'app = "busy"')
    toml = toml.replace(
        "  min_machines_running = 1\n",
        "  min_machines_running = 1\n  [http_service.concurrency]\n"
        '    type = "requests"\n    soft_limit = 1\n    hard_limit = 1\n',
    )
    (app_dir / "fly.toml").write_text(toml)
    result = ferry(cluster, "deploy", "--regions", "ams,iad", cwd=app_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    wait_routable(cluster, "ams", "busy")
    netns = cluster.plan.region("ams").netns
    url = "http://busy.ferry.test/cgi-bin/slow.cgi?1"
    clients = [
        subprocess.Popen(
            ["ip", "netns", "exec", netns, "curl", "-s", "-m", "10", url],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    bodies = [c.communicate(timeout=20)[0] for c in clients]
    served = sorted(body.partition("region=")[2].split(" ")[0] for body in bodies)
    assert served == ["ams", "iad"], bodies  # the second request found ams at its hard limit


def test_a_request_wakes_a_stopped_machine_and_is_held_not_failed(
    cluster: ClusterSettings, client: FerryClient, tmp_path: Path
) -> None:
    deploy_demo(cluster, tmp_path, "sleepy", "iad")
    wait_routable(cluster, "iad", "sleepy")
    (m,) = client.list_machines("sleepy")
    assert ferry(cluster, "machine", "stop", m.id, "-a", "sleepy").returncode == 0
    client.wait_machine("sleepy", m.id, state="stopped", timeout=30)
    until_edge_sees(cluster, "iad", m.id, "stopped")
    result = curl(cluster, "iad", "-w", " %{http_code} %{time_total}", "http://sleepy.ferry.test/")
    body, status, seconds = result.stdout.rsplit(" ", 2)
    assert status == "200" and "region=iad" in body, result.stdout
    assert float(seconds) < 5
    assert client.get_machine("sleepy", m.id).state is MachineState.STARTED
