"""Property: the Scheduler's index answers exactly what place_machine answers.

A seeded random walk of placements and releases over hosts in several
regions (some down, some pre-loaded, some tight); after each step an
independently maintained model of the hosts is updated, and the Scheduler's
answer must equal ``place_machine`` on that model.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from ferry.scheduler import (
    HostCapacity,
    NoPlacement,
    Placement,
    PlacementRequest,
    Scheduler,
    place_machine,
)

APPS = ["web", "api", "db", "worker", "cron", "edge"]
SIZES = [(1, 256), (1, 512), (2, 1024), (4, 2048), (1, 2048), (8, 4096)]


def _random_hosts(rng: random.Random) -> list[HostCapacity]:
    hosts: list[HostCapacity] = []
    for region, count in (("ams", 14), ("iad", 5), ("sin", 2)):
        for i in range(count):
            cpus = rng.choice([2, 4, 8, 16])
            memory = rng.choice([1024, 4096, 8192, 16384])
            apps = {app: n for app in rng.sample(APPS, 2) if (n := rng.randint(0, 2))}
            used_cpus = min(cpus, sum(apps.values()))
            hosts.append(
                HostCapacity(
                    host_id=f"{region}-{i:02d}",
                    region=region,
                    cpus=cpus,
                    memory_mb=memory,
                    used_cpus=used_cpus,
                    used_memory_mb=256 * sum(apps.values()),
                    app_machines=apps,
                    up=rng.random() > 0.15 or (region == "sin" and i == 0),
                )
            )
    rng.shuffle(hosts)
    return hosts


def _apply(
    model: list[HostCapacity], host_id: str, app: str, cpus: int, memory_mb: int, step: int
) -> list[HostCapacity]:
    updated: list[HostCapacity] = []
    for host in model:
        if host.host_id == host_id:
            apps = dict(host.app_machines)
            apps[app] = apps.get(app, 0) + step
            host = dataclasses.replace(
                host,
                used_cpus=host.used_cpus + step * cpus,
                used_memory_mb=host.used_memory_mb + step * memory_mb,
                app_machines={a: n for a, n in apps.items() if n},
            )
        updated.append(host)
    return updated


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_scheduler_agrees_with_place_machine_over_500_random_steps(seed: int) -> None:
    rng = random.Random(seed)
    model = _random_hosts(rng)
    scheduler = Scheduler(model)
    placed: list[tuple[str, str, int, int]] = []
    outcomes: dict[type, int] = {Placement: 0, NoPlacement: 0}
    for _step in range(500):
        if placed and rng.random() < 0.3:
            host_id, app, cpus, memory_mb = placed.pop(rng.randrange(len(placed)))
            scheduler.release(host_id, app, cpus, memory_mb)
            model = _apply(model, host_id, app, cpus, memory_mb, -1)
            continue
        cpus, memory_mb = rng.choice(SIZES)
        region = rng.choices(["ams", "iad", "sin", "xyz"], weights=[6, 3, 1, 0.2])[0]
        app = rng.choice(APPS[:3]) if rng.random() < 0.7 else rng.choice(APPS)
        request = PlacementRequest(app, region, cpus, memory_mb)
        expected = place_machine(request, model)
        outcome = scheduler.place(request)
        assert outcome == expected, f"step {_step}: {request}"
        outcomes[type(outcome)] += 1
        if isinstance(outcome, Placement):
            placed.append((outcome.host_id, app, cpus, memory_mb))
            model = _apply(model, outcome.host_id, app, cpus, memory_mb, 1)
    assert scheduler.snapshot() == model
    # the walk must exercise both answers, or it proves little
    assert outcomes[Placement] > 50 and outcomes[NoPlacement] > 5, outcomes


def test_scheduler_agrees_with_place_machine_when_one_app_fills_a_big_region() -> None:
    rng = random.Random(7)
    model = [HostCapacity(f"ams-{i:03d}", "ams", 64, 32768) for i in range(40)]
    scheduler = Scheduler(model)
    for step in range(600):
        cpus, memory_mb = rng.choice(SIZES[:4])
        app = "web" if rng.random() < 0.8 else "api"
        request = PlacementRequest(app, "ams", cpus, memory_mb)
        expected = place_machine(request, model)
        outcome = scheduler.place(request)
        assert outcome == expected, f"step {step}: {request}"
        if isinstance(outcome, Placement):
            model = _apply(model, outcome.host_id, app, cpus, memory_mb, 1)
    counts = [h.app_machines.get("web", 0) for h in model]
    assert max(counts) - min(counts) <= 1  # spread held while everything fit
