"""Benchmark: place many machines on many simulated hosts with ``ferry.scheduler.Scheduler``.

Run::

    .venv/bin/python bench/scheduler_bench.py [--hosts 1000 --machines 100000 \
        --regions 10 --apps 1000 --headroom 1.35 --seed 1]

One pass, bounded: the requests are generated first (seeded, not timed), then
placed one after another on one core. Hosts are sized from the demand with
headroom so every machine fits; the figures say how many did not. Prints the
conditions and the figures: build seconds, total seconds, placements/s, failed.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ferry.model import SIZE_PRESETS
from ferry.scheduler import HostCapacity, Placement, PlacementRequest, Scheduler

#: Fly presets and how often each is asked for (shared sizes dominate real fleets).
MACHINE_MIX: dict[str, int] = {
    "shared-cpu-1x": 50,
    "shared-cpu-2x": 20,
    "shared-cpu-4x": 10,
    "performance-1x": 15,
    "performance-2x": 5,
}


def make_requests(
    rng: random.Random, machines: int, regions: list[str], apps: int
) -> list[PlacementRequest]:
    """Each app lives in 1-3 regions; each machine picks an app, then one of its regions."""
    app_regions = [rng.sample(regions, rng.randint(1, min(3, len(regions)))) for _ in range(apps)]
    sizes = [SIZE_PRESETS[name][1:] for name in MACHINE_MIX]
    weights = list(MACHINE_MIX.values())
    requests: list[PlacementRequest] = []
    for _ in range(machines):
        app = rng.randrange(apps)
        cpus, memory_mb = rng.choices(sizes, weights)[0]
        region = rng.choice(app_regions[app])
        requests.append(PlacementRequest(f"app-{app:04d}", region, cpus, memory_mb))
    return requests


def make_hosts(
    requests: list[PlacementRequest], hosts: int, regions: list[str], headroom: float
) -> list[HostCapacity]:
    """Split hosts evenly over regions; size each region's hosts from its own demand."""
    cpus_by_region: Counter[str] = Counter()
    memory_by_region: Counter[str] = Counter()
    for request in requests:
        cpus_by_region[request.region] += request.cpus
        memory_by_region[request.region] += request.memory_mb
    result: list[HostCapacity] = []
    for index, region in enumerate(regions):
        count = hosts // len(regions) + (1 if index < hosts % len(regions) else 0)
        if count == 0:
            continue
        cpus = max(1, int(cpus_by_region[region] * headroom / count) + 8)
        memory_mb = max(1024, int(memory_by_region[region] * headroom / count) + 8192)
        memory_mb = -(-memory_mb // 1024) * 1024
        for i in range(count):
            result.append(HostCapacity(f"{region}-{i:04d}", region, cpus, memory_mb))
    return result


def run(
    hosts: int, machines: int, region_count: int, apps: int, seed: int, headroom: float
) -> None:
    rng = random.Random(seed)
    regions = [f"r{i:02d}" for i in range(region_count)]
    requests = make_requests(rng, machines, regions, apps)
    snapshot = make_hosts(requests, hosts, regions, headroom)
    sizes = sorted({(h.cpus, h.memory_mb) for h in snapshot})

    print(f"python      {platform.python_implementation()} {platform.python_version()}")
    print(f"machine     {platform.machine()}, {platform.system()} {platform.release()}")
    per_region = len(snapshot) // region_count
    print(f"hosts       {len(snapshot)} in {region_count} regions ({per_region} each)")
    print(
        f"host sizes  {min(sizes)[0]}-{max(sizes)[0]} cpus / {min(s[1] for s in sizes)}-"
        f"{max(s[1] for s in sizes)} MB (demand x {headroom} per region)"
    )
    print(f"machines    {machines} of {apps} apps, each app in 1-3 regions, seed {seed}")
    mix = ", ".join(f"{name} {weight}%" for name, weight in MACHINE_MIX.items())
    print(f"sizes       {mix}")

    started = time.perf_counter()
    scheduler = Scheduler(snapshot)
    built = time.perf_counter() - started

    place = scheduler.place
    started = time.perf_counter()
    outcomes = [place(request) for request in requests]
    elapsed = time.perf_counter() - started

    failed = sum(1 for outcome in outcomes if not isinstance(outcome, Placement))
    print(f"build       {built:.3f} s")
    print(f"total       {elapsed:.2f} s for {machines} placements")
    print(f"rate        {machines / elapsed:,.0f} placements/s")
    print(f"failed      {failed} for lack of room")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--machines", type=int, default=100_000)
    parser.add_argument("--regions", type=int, default=10)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--headroom", type=float, default=1.35, help="host capacity / demand per region"
    )
    args = parser.parse_args()
    for name in ("hosts", "machines", "regions", "apps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.headroom <= 0:
        parser.error("--headroom must be above 0 (1.35 leaves a quarter of each host free)")
    if args.hosts < args.regions:
        parser.error("--hosts must be at least --regions, so every region has a host")
    run(args.hosts, args.machines, args.regions, args.apps, args.seed, args.headroom)


if __name__ == "__main__":
    main()
