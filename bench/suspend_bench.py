"""Suspend: resuming a suspended machine next to starting a stopped one, and the edge's wake.

Run as root: ``.venv/bin/python bench/suspend_bench.py [--runs 20]``.

One-region embedded cluster, the demo app (busybox httpd) with one machine and
``auto_stop_machines = "suspend"``. Requests come from a thread that has
joined the region's network namespace (``setns``), so no process is spawned
per sample; API calls go from the same process over one kept-alive client.

(a) Start → ``started`` and answering, per run, both in the same run:
    - suspended: ``suspend``, wait ``suspended``; then time ``start`` +
      ``wait?state=started`` + one GET to the machine's address that answers;
    - stopped: ``stop``, wait ``stopped``; then the same (the GET is retried
      until httpd listens, as a user's would be).
(b) A request through the edge to the app whose only machine is suspended
    (the edge asks the control plane to start it and, once the start is
    recorded, forwards the request to the frozen machine, whose socket still
    accepts connections: it answers on thaw), next to the same request while
    it runs.
    After each suspend the bench waits 0.2 s so the edge's table has it (the
    edge exposes no table version to wait on).
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import os
import platform
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from _cluster import demo_app_dir, ferry_cli

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
APP = "hello"


def join_netns(netns: str) -> None:
    """Move the calling thread (only it) into ``/run/netns/<netns>``."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
    finally:
        os.close(fd)


class RegionClient:
    """GETs from inside a region's network namespace, on one dedicated thread."""

    def __init__(self, netns: str) -> None:
        self.pool = ThreadPoolExecutor(1, initializer=join_netns, initargs=(netns,))

    def run(self, fn: Callable[[], T]) -> T:
        return self.pool.submit(fn).result()

    def close(self) -> None:
        self.pool.shutdown()


def get(address: str, port: int, host: str, *, retry_until: float = 0.0) -> int:
    """One GET / on a fresh connection; retries refused connections until ``retry_until``."""
    while True:
        conn = http.client.HTTPConnection(address, port, timeout=30)
        try:
            conn.request("GET", "/", headers={"Host": host})
            response = conn.getresponse()
            response.read()
            return response.status
        except ConnectionRefusedError:
            if time.perf_counter() >= retry_until:
                raise
            time.sleep(0.001)
        finally:
            conn.close()


def logged_ms(home: Path, pattern: str) -> list[float]:
    """Milliseconds captured by ``pattern`` (one group) in every cluster log under ``home``."""
    found: list[float] = []
    for path in home.rglob("*.log"):
        for match in re.finditer(pattern, path.read_text(errors="replace")):
            found.append(float(match.group(1)))
    return found


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fly_toml_for_suspend(app_dir: Path) -> None:
    toml = (app_dir / "fly.toml").read_text()
    toml = toml.replace('auto_stop_machines = "off"', 'auto_stop_machines = "suspend"')
    toml = toml.replace("min_machines_running = 1", "min_machines_running = 0")
    (app_dir / "fly.toml").write_text(toml)


def start_to_answer(
    client: FerryClient,
    region: RegionClient,
    machine_id: str,
    address: str,
    marks: list[tuple[float, float, float]] | None = None,
) -> tuple[float, float]:
    """(seconds from the start call to ``started``, to the first 200 from the machine).

    ``marks`` gets (wall clock at the call, s until the call returned, s until the wait did).
    """
    wall, began = time.time(), time.perf_counter()
    client.start_machine(APP, machine_id)
    answered = time.perf_counter()
    client.wait_machine(APP, machine_id, state="started", timeout=30)
    started = time.perf_counter()
    status = region.run(lambda: get(address, 8080, APP, retry_until=started + 10))
    assert status == 200, status
    if marks is not None:
        marks.append((wall, answered - began, started - began))
    return started - began, time.perf_counter() - began


_STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"


def agent_stamps(home: Path, pattern: str) -> list[float]:
    """Wall-clock times of the agent log lines matching ``pattern`` (ms resolution)."""
    found: list[float] = []
    for path in home.rglob("*.log"):
        for match in re.finditer(_STAMP + " " + pattern, path.read_text(errors="replace")):
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            found.append(stamp.timestamp())
    return sorted(found)


def breakdown(
    marks: list[tuple[float, float, float]], cycles: list[float], done: list[float]
) -> str:
    """Median ms of each hop of a resume: API call; to the agent's cycle; the step; the rest."""
    api, to_agent, step, back = [], [], [], []
    for wall, answered, started in marks:
        cycle = next((c for c in cycles if c >= wall - 0.002), None)
        finish = next((d for d in done if cycle is not None and d >= cycle - 0.002), None)
        if cycle is None or finish is None or finish > wall + started + 0.002:
            continue
        api.append(answered * 1000)
        to_agent.append((cycle - wall) * 1000)
        step.append((finish - cycle) * 1000)
        back.append((wall + started - finish) * 1000)
    if not api:
        return "breakdown: no agent log lines matched"
    m = statistics.median
    return (
        f"breakdown of a resume, p50 over {len(api)} (log stamps have 1 ms resolution): "
        f"start call answered {m(api):.1f} ms; start call sent -> agent cycle acts "
        f"{m(to_agent):.1f} ms; agent cycle -> resumed, reporting {m(step):.1f} ms; "
        f"report -> wait?state=started returns {m(back):.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    app_dir = demo_app_dir()
    fly_toml_for_suspend(app_dir)
    resume: list[tuple[float, float]] = []
    cold: list[tuple[float, float]] = []
    warm: list[float] = []
    woken: list[float] = []
    failures = 0
    marks: list[tuple[float, float, float]] = []
    try:
        with ephemeral_cluster(("ams",), octet=201) as settings:
            ferry_cli(settings, "deploy", "--regions", "ams", cwd=app_dir)
            token = settings.token_path.read_text().strip()
            plan = settings.plan.region("ams")
            region = RegionClient(plan.netns)
            edge = settings.plan.edge_address
            host = f"{APP}.ferry.test"
            try:
                with FerryClient(settings.api_url, token) as client:
                    (machine,) = client.list_machines(APP)
                    mid, address = machine.id, machine.host_ip
                    client.wait_machine(APP, mid, state="started", timeout=30)
                    for run in range(args.runs + 1):  # run 0 warms connections and caches
                        client.suspend_machine(APP, mid)
                        client.wait_machine(APP, mid, state="suspended", timeout=30)
                        sample = start_to_answer(client, region, mid, address, marks)
                        client.stop_machine(APP, mid)
                        client.wait_machine(APP, mid, state="stopped", timeout=30)
                        cold_sample = start_to_answer(client, region, mid, address)
                        began = time.perf_counter()
                        code = region.run(lambda: get(edge, 80, host))
                        warm_sample = time.perf_counter() - began
                        client.suspend_machine(APP, mid)
                        client.wait_machine(APP, mid, state="suspended", timeout=30)
                        time.sleep(0.2)  # the edge's table has it suspended
                        began = time.perf_counter()
                        code = region.run(lambda: get(edge, 80, host))
                        wake_sample = time.perf_counter() - began
                        client.wait_machine(APP, mid, state="started", timeout=30)
                        if run == 0:
                            continue
                        failures += code != 200
                        resume.append(sample)
                        cold.append(cold_sample)
                        warm.append(warm_sample)
                        woken.append(wake_sample)
            finally:
                region.close()
            cycles = agent_stamps(settings.home, r"INFO ferry.agent: resume: ")
            done = agent_stamps(settings.home, r"INFO ferry.agent.runner: machine \S+ resumed in")
            runc_resume = logged_ms(settings.home, r"resumed in ([0-9.]+) ms")
            edge_wake = logged_ms(
                settings.home, r"woke \S+ of hello in \S+ .*?: resuming \(was \w+\) in ([0-9.]+) ms"
            )
    finally:
        shutil.rmtree(app_dir.parent, ignore_errors=True)
    load = os.getloadavg()
    print(
        f"conditions: kernel {platform.release()}, {os.cpu_count()} cores shared with other "
        f"work (load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}), runs={args.runs}, "
        "one-region embedded cluster, demo app (busybox httpd, 128 MB), client in the region"
    )

    def row(label: str, seconds: list[float]) -> float:
        ms = [s * 1000 for s in seconds]
        p50 = statistics.median(ms)
        print(f"{label:<44} p50 {p50:7.1f} ms  p95 {pct(ms, 0.95):7.1f} ms")
        return p50

    resumed = row("(a) suspended: start -> started", [s for s, _ in resume])
    resumed_answer = row("(a) suspended: start -> answering", [a for _, a in resume])
    row("(a) stopped:   start -> started", [s for s, _ in cold])
    cold_answer = row("(a) stopped:   start -> answering", [a for _, a in cold])
    warm_p50 = row("(b) warm request through the edge", warm)
    wake_p50 = row("(b) request to the suspended app (wake)", woken)
    print(
        f"(a) resume/cold-start p50 {resumed_answer / cold_answer:.2f} "
        f"(started only: {resumed:.1f} ms); goal <= 20 ms"
    )
    print(
        f"where the time goes: the agent's resume step (thaw by the freezer file) p50 "
        f"{median(runc_resume):.1f} ms over {len(runc_resume)}; the edge's wake "
        f"(start call recorded -> request forwarded to the frozen machine) p50 "
        f"{median(edge_wake):.1f} ms over {len(edge_wake)}"
    )
    print(breakdown(marks[1:], cycles, done))
    print(f"(b) added latency p50 {wake_p50 - warm_p50:.1f} ms; goal <= 25 ms; failures {failures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
