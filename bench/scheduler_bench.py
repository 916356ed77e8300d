"""Benchmark: placements per second through the path the API uses to place a machine.

Run::

    .venv/bin/python bench/scheduler_bench.py [--hosts 1000 --regions 10 --apps 100 \
        --preload 1000 --machines 1000 --seed 1]

What is timed is ``MachineService.create`` — what ``POST /v1/apps/{app}/machines``
calls after parsing the body: under the service's placement lock it decides on
the plane's in-memory capacities (``ferry.server.capacity_view``: the
incremental ``ferry.scheduler.Scheduler`` and each host's addresses), then
inserts the machine, its config version and its launch event in one SQLite
transaction (WAL, ``synchronous=NORMAL``, as the server runs it) that first
checks the store is still at the versions the decision was based on, then
notifies the watchers. One thread, so one core.

Setup (not timed): a fresh SQLite store in a temporary directory, ``--hosts``
hosts registered through ``HostService`` over ``--regions`` regions, ``--apps``
apps, and ``--preload`` machines created the same way, so the store already
holds a fleet. Requests are seeded: each app lives in 1-3 regions; sizes follow
a shared-heavy mix. ``--reports N`` writes N agent state reports (machine writes the placement did
not make, so its view must catch up) before each timed create, untimed.
Prints the conditions and placements/s; afterwards checks, from the store, that
every machine was stored, no two live machines share an address on a host
and no host is over its cpus or memory.
"""

from __future__ import annotations

import argparse
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ferry.model import GuestConfig, MachineConfig, MachineState
from ferry.server.clock import SystemClock
from ferry.server.context import ControlPlane
from ferry.server.placement import host_capacities
from ferry.server.schemas import CreateMachineRequest, RegisterHostRequest
from ferry.store import open_store

STARTED = MachineState.STARTED

#: Fly presets and how often each is asked for (shared sizes dominate real fleets).
MACHINE_MIX: dict[str, int] = {
    "shared-cpu-1x": 50,
    "shared-cpu-2x": 20,
    "shared-cpu-4x": 10,
    "performance-1x": 15,
    "performance-2x": 5,
}


def make_requests(
    rng: random.Random, count: int, regions: list[str], apps: int
) -> list[tuple[str, CreateMachineRequest]]:
    """(app, request) pairs: each app lives in 1-3 regions; a machine picks an app, a region."""
    app_regions = [rng.sample(regions, rng.randint(1, min(3, len(regions)))) for _ in range(apps)]
    configs = {
        size: MachineConfig(image="registry.local/app:1", guest=GuestConfig.from_size(size))
        for size in MACHINE_MIX
    }
    sizes, weights = list(MACHINE_MIX), list(MACHINE_MIX.values())
    requests: list[tuple[str, CreateMachineRequest]] = []
    for _ in range(count):
        app = rng.randrange(apps)
        size = rng.choices(sizes, weights)[0]
        region = rng.choice(app_regions[app])
        request = CreateMachineRequest(region=region, config=configs[size])
        requests.append((f"app-{app:04d}", request))
    return requests


def build_plane(directory: Path, hosts: int, regions: list[str], apps: int) -> ControlPlane:
    store = open_store(f"sqlite:///{directory / 'ferry.db'}")
    plane = ControlPlane.build(store, SystemClock(), host_down_after=3600, registry="")
    for h in range(hosts):
        plane.hosts.register(
            RegisterHostRequest(
                id=f"host-{h:04d}",
                region=regions[h % len(regions)],
                address=f"10.255.{h // 250}.{h % 250 + 1}",
                cpus=64,
                memory_mb=262_144,
                machine_subnet=f"10.{h // 250}.{h % 250}.0/24",
            )
        )
    for a in range(apps):
        plane.apps.create(f"app-{a:04d}", "personal", "default")
    return plane


def check_fleet(plane: ControlPlane, expected: int) -> None:
    """Exit with a message unless the store holds a fleet placement could have made."""
    live = plane.store.list_machines(include_destroyed=False)
    addresses = {(m.host_id, m.host_ip) for m in live}
    problems = []
    if len(live) != expected:
        problems.append(f"{len(live)} machines stored, not {expected}")
    if len(addresses) != len(live):
        problems.append(f"{len(live) - len(addresses)} addresses given twice")
    for capacity in host_capacities(plane.store.list_hosts(), live):
        if capacity.free_cpus < 0 or capacity.free_memory_mb < 0:
            problems.append(f"host {capacity.host_id} is overbooked")
    if problems:
        sys.exit("placement went wrong: " + "; ".join(problems))


def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    regions = [f"r{i:02d}" for i in range(args.regions)]
    requests = make_requests(rng, args.preload + args.machines, regions, args.apps)
    directory = Path(tempfile.mkdtemp(prefix="ferry-sched-"))
    try:
        plane = build_plane(directory, args.hosts, regions, args.apps)
        create = plane.machines.create
        for app, request in requests[: args.preload]:
            create(app, request)
        timed = requests[args.preload :]
        live = plane.store.list_machines(include_destroyed=False)
        elapsed = 0.0
        for app, request in timed:
            for _ in range(args.reports):  # a machine write the placement did not make
                machine = plane.store.get_machine(rng.choice(live).id)
                plane.store.update_machine(machine.id, machine.revision, state=STARTED)
            started = time.perf_counter()
            create(app, request)
            elapsed += time.perf_counter() - started
        check_fleet(plane, args.preload + args.machines)
        plane.store.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"python      {platform.python_implementation()} {platform.python_version()}")
    print(f"machine     {platform.machine()}, {platform.system()} {platform.release()}")
    print(
        f"hosts       {args.hosts} in {args.regions} regions, 64 cpus / 256 GB each, in the store"
    )
    print(f"fleet       {args.preload} machines of {args.apps} apps placed before timing")
    mix = ", ".join(f"{name} {weight}%" for name, weight in MACHINE_MIX.items())
    print(f"sizes       {mix}; each app in 1-3 regions, seed {args.seed}")
    print("path        MachineService.create (lock, capacity view, checked insert + event)")
    print("checked     every machine stored, no address twice, no host overbooked")
    if args.reports:
        print(f"between     {args.reports} agent report(s) before each create (not timed)")
    print(f"total       {elapsed:.2f} s for {len(timed)} placements, one thread")
    print(f"rate        {len(timed) / elapsed:,.0f} placements/s  (goal >= 2,000)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--regions", type=int, default=10)
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--preload", type=int, default=1000)
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--reports",
        type=int,
        default=0,
        help="agent state reports written before each timed create (the view then catches up)",
    )
    args = parser.parse_args()
    for name in ("hosts", "regions", "apps", "machines"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.preload < 0:
        parser.error("--preload must be 0 or more")
    if args.reports < 0 or (args.reports and args.preload < 1):
        parser.error("--reports must be 0 or more, and needs --preload of at least 1")
    if args.hosts < args.regions:
        parser.error("--hosts must be at least --regions, so every region has a host")
    if args.hosts > 62_500:
        parser.error("--hosts must be at most 62500 (one /24 of 10.0.0.0/8 each)")
    run(args)


if __name__ == "__main__":
    main()
