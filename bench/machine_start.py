"""Machine start in the cluster users run: API create → ``started``, next to raw ``runc run -d``.

Run as root: ``.venv/bin/python bench/machine_start.py [--runs 20] [--home DIR]``.

Topology: the three regions of ``make up`` (ams, iad, sin, one host each, the
emulated WAN between them). With ``--home`` it uses the cluster ``make up``
started under that ``FERRY_HOME``; otherwise it starts the same topology
under a temporary home and deploys the demo app there, as ``make up`` does.

Then, as a new user would, from one client process: N times, POST a machine in
ams with the deployed app's own config (image by digest, its command, env,
services and checks) and long-poll ``/wait?state=started``; the time is from
sending the create until the wait returns. Each start is split into phases
from the agent's log line for it (see ``ferry.agent.runner``) and the
client's clock (all processes share one machine's clock). Also times
``start`` of a stopped machine the same way.

The baseline, in the same run and interleaved (one before each create, as
the machine is shared): raw ``runc run -d`` of the same image's rootfs (pulled
from the cluster's registry), the same process, the same seccomp filter and
the same user-namespace spec (its own uid range, the image idmapped into it; see
``machine_start_raw``), its bundle (those mounts and config.json) prepared
before the clock starts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from _cluster import demo_app_dir, ferry_cli
from machine_start_raw import percentile, raw_runs

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster
from ferry.cluster.settings import ClusterSettings
from ferry.model import MachineConfig
from ferry.runtime.host_os import remove_cgroup_dirs
from ferry.runtime.images import RegistryImageStore
from ferry.runtime.process import resolve_process

REGIONS = ("ams", "iad", "sin")
_STEP = re.compile(r"start: machine (\S+) should be started.*\(snapshot of ([\d.]+)\)")
_STARTED = re.compile(r"machine (\S+) started in ([\d.]+) ms \((\w+); (.*); began at ([\d.]+)\)")
_PHASE = re.compile(r"([\w-]+) ([\d.]+) ms")


@dataclass
class Sample:
    machine_id: str
    sent: float  # wall clock, client
    answered: float  # the create's response arrived
    done: float  # the wait returned


@dataclass
class Breakdown:
    """Per-phase milliseconds of each create, in the order they happen."""

    rows: dict[str, list[float]] = field(default_factory=dict)

    def add(self, phase: str, ms: float) -> None:
        self.rows.setdefault(phase, []).append(ms)


def api_runs(
    client: FerryClient,
    config: MachineConfig,
    runs: int,
    between: Callable[[int], None] = lambda n: None,
) -> tuple[list[Sample], list[float]]:
    """``runs`` creates (and starts of the stopped machine); ``between(n)`` runs before each."""
    creates: list[Sample] = []
    starts: list[float] = []
    for n in range(runs):
        between(n)
        sent = time.time()
        m = client.create_machine("hello", config, region="ams")
        answered = time.time()
        client.wait_machine("hello", m.id, state="started", instance_id=m.instance_id, timeout=30)
        creates.append(Sample(m.id, sent, answered, time.time()))
        client.stop_machine("hello", m.id)
        client.wait_machine("hello", m.id, state="stopped", timeout=30)
        began = time.perf_counter()
        client.start_machine("hello", m.id)
        client.wait_machine("hello", m.id, state="started", timeout=30)
        starts.append(time.perf_counter() - began)
        client.delete_machine("hello", m.id, force=True)
    return creates, starts


def breakdown(samples: list[Sample], agent_log: str) -> Breakdown:
    """Split each create into phases using the agent's log lines for its machine."""
    snapshot: dict[str, float] = {}
    started: dict[str, tuple[float, float, dict[str, float]]] = {}
    for line in agent_log.splitlines():
        if (step := _STEP.search(line)) and step.group(1) not in snapshot:
            snapshot[step.group(1)] = float(step.group(2))
        elif (done := _STARTED.search(line)) and done.group(3) == "start":
            phases = {name: float(ms) for name, ms in _PHASE.findall(done.group(4))}
            started.setdefault(done.group(1), (float(done.group(5)), float(done.group(2)), phases))
    result = Breakdown()
    for s in samples:
        if s.machine_id not in snapshot or s.machine_id not in started:
            continue
        began, took_ms, phases = started[s.machine_id]
        result.add(
            "API create → snapshot at the agent (store, watch)",
            (snapshot[s.machine_id] - s.sent) * 1000,
        )
        result.add("  of which: create's response at the client", (s.answered - s.sent) * 1000)
        result.add("agent cycle → step begins", (began - snapshot[s.machine_id]) * 1000)
        for name, ms in phases.items():
            result.add(f"step: {name}", ms)
        result.add("report `started` → wait returns", (s.done - began) * 1000 - took_ms)
        result.add("total", (s.done - s.sent) * 1000)
    return result


@contextlib.contextmanager
def raw_baseline(
    settings: ClusterSettings, config: MachineConfig
) -> Iterator[Callable[[int], float]]:
    """A function that times one raw ``runc run -d`` of the deployed image's rootfs, with
    the same process and seccomp filter (bundle prepared before the clock starts)."""
    cgroup_parent = f"ferry-bench-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    try:
        store = RegistryImageStore(
            work / "images", insecure_registries=(settings.registry_address,)
        )
        image = store.ensure(config.image)
        process = tuple(resolve_process(image.config, config.init))

        def one(n: int) -> float:
            return raw_runs(work, image, 1, cgroup_parent, seccomp=True, process=process, first=n)[
                0
            ]

        yield one
    finally:
        remove_cgroup_dirs(cgroup_parent)
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def cluster(home: Path | None) -> Iterator[ClusterSettings]:
    """The ``make up`` cluster under ``home``, or the same topology made (and removed) here."""
    if home is not None:
        yield ClusterSettings.load(home)
        return
    app_dir = demo_app_dir()
    try:
        with ephemeral_cluster(REGIONS, octet=190) as settings:
            ferry_cli(settings, "deploy", "--regions", ",".join(REGIONS), cwd=app_dir)
            yield settings
    finally:
        shutil.rmtree(app_dir.parent, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--home", type=Path, help="FERRY_HOME of a running `make up` cluster")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    with cluster(args.home) as settings:
        token = settings.token_path.read_text().strip()
        with FerryClient(settings.api_url, token) as client:
            ams = [m for m in client.list_machines("hello") if m.region == "ams"]
            config = ams[0].config
            with raw_baseline(settings, config) as raw_once:
                raw: list[float] = []
                api_runs(client, config, 2)  # warm-up: connections, caches
                # Interleaved, one raw start before each create: the machine is shared,
                # so both sides see the same load.
                creates, starts = api_runs(
                    client, config, args.runs, lambda n: raw.append(raw_once(n))
                )
        logs = "".join(p.read_text() for p in settings.log_dir.glob("agent-*.log"))
    create = [s.done - s.sent for s in creates]
    print(
        f"conditions: kernel {platform.release()}, {os.cpu_count()} cores, runs={args.runs}, "
        f"regions {','.join(REGIONS)} (make-up topology), machine in ams, the deployed app's "
        f"config (image {config.image.split('@')[0]}, process as the image says), "
        f"image cached on the host; {'make up cluster' if args.home else 'ephemeral cluster'}"
    )
    print("\nbreakdown of API create → started (p50 per phase, ms):")
    for phase, values in breakdown(creates, logs).rows.items():
        print(f"  {phase:<52} {statistics.median(values):7.1f}")
    rows = (
        ("raw `runc run -d` (same rootfs)", raw),
        ("API create -> started", create),
        ("API start (stopped) -> started", starts),
    )
    print()
    for label, samples in rows:
        p50, p95 = statistics.median(samples) * 1000, percentile(samples, 0.95) * 1000
        print(f"{label:<34} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    base = statistics.median(raw)
    print(
        f"ratio create/raw p50 {statistics.median(create) / base:.2f}; "
        f"start/raw p50 {statistics.median(starts) / base:.2f}  (goal <= 1.5 and <= 100 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
