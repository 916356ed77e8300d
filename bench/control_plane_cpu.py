"""CPU each Ferry process spends per machine create + destroy, in the `make up` topology.

Run as root: ``.venv/bin/python bench/control_plane_cpu.py [--cycles 10]``.

A machine's life wakes every long poll of the cluster (hosts' watches, the mesh,
the `.internal` feeds, the edges' routes and TLS feeds). This counts what that
costs, process by process, where wall-clock timings on a shared machine cannot:
user + system CPU from ``/proc/<pid>/stat`` (children that exited included, so an
agent's ``runc``/``ip``/``nft`` execs count), before and after N cycles of API
create → wait started → destroy → wait destroyed of the demo app's machine in ams,
divided by N. Idle background work (heartbeats, reports) over the same seconds is
measured first with no cycles and shown beside it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _cluster import demo_app_dir, ferry_cli

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster

REGIONS = ("ams", "iad", "sin")
KINDS = (("ferry server", "control plane"), ("ferry proxy", "edge"), ("ferry agent", "agent"))
TICKS = os.sysconf("SC_CLK_TCK")


def processes(home: Path) -> dict[int, str]:
    """pid → a label, for the cluster's control plane, edges and agents."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode(errors="replace") for a in argv)
        if str(home) not in text:
            continue
        for needle, kind in KINDS:
            if needle in text:
                region = next((r for r in REGIONS if f"--region {r}" in text), "")
                host = text.split("--host-id ")[1].split()[0] if "--host-id " in text else ""
                found[int(entry.name)] = f"{kind} {host or region}".strip()
    return found


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / TICKS  # utime stime cutime cstime


def measure(pids: dict[int, str], run: Callable[[], None]) -> dict[str, float]:
    before = {pid: cpu_seconds(pid) for pid in pids}
    run()
    return {label: cpu_seconds(pid) - before[pid] for pid, label in pids.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (the cluster needs namespaces)", file=sys.stderr)
        return 2
    app_dir = demo_app_dir()
    try:
        with ephemeral_cluster(REGIONS, octet=192) as settings:
            ferry_cli(settings, "deploy", "--regions", ",".join(REGIONS), cwd=app_dir)
            token = settings.token_path.read_text().strip()
            with FerryClient(settings.api_url, token) as client:
                config = client.list_machines("hello")[0].config

                def cycles() -> None:
                    for _ in range(args.cycles):
                        m = client.create_machine("hello", config, region="ams")
                        client.wait_machine(
                            "hello", m.id, state="started", instance_id=m.instance_id, timeout=30
                        )
                        client.delete_machine("hello", m.id, force=True)
                        client.wait_machine("hello", m.id, state="destroyed", timeout=30)

                pids = processes(settings.home)
                began = time.monotonic()
                busy = measure(pids, cycles)
                seconds = time.monotonic() - began
                idle = measure(pids, lambda: time.sleep(seconds))
    finally:
        shutil.rmtree(app_dir.parent, ignore_errors=True)
    print(
        f"conditions: kernel {platform.release()}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f}, regions {','.join(REGIONS)} (make-up topology), "
        f"{args.cycles} cycles of create -> started -> destroy -> destroyed in ams "
        f"({seconds:.1f} s), then the same seconds idle"
    )
    print(f"{'process':<24} {'CPU ms per cycle':>17} {'idle, same seconds':>19}")
    for label in sorted(busy):
        per_cycle = (busy[label] - idle[label]) * 1000 / args.cycles
        print(f"{label:<24} {per_cycle:>17.1f} {idle[label] * 1000 / args.cycles:>19.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
