"""canary and bluegreen: their pure shapes, and the order the rollout acts in."""

from __future__ import annotations

import pytest

from ferry.deploy.plan import DeployStep, plan_deploy
from ferry.deploy.strategies import bluegreen_phases, canary_step, check_strategy
from ferry.errors import ValidationError
from ferry.model import DesiredState, Machine, MachineState
from tests.unit.deploy.deploy_fakes import FakeRolloutClient, make_machine
from tests.unit.deploy.test_deploy_rollout import NEW_IMAGE, run


def three_machines() -> list[Machine]:
    return [
        make_machine("a1"),
        make_machine("a2", created_minute=1),
        make_machine("s1", "sin", created_minute=2),
    ]


# -- pure shapes --------------------------------------------------------------


def test_bluegreen_makes_a_green_in_each_blues_region_and_a_region_without_machines_gets_one() -> (
    None
):
    plan = plan_deploy(three_machines(), ["ams", "sin", "iad"], "bluegreen")
    phases = bluegreen_phases(plan)
    assert [(g.kind, g.region) for g in phases.greens] == [
        ("create", "ams"),
        ("create", "ams"),
        ("create", "sin"),
        ("create", "iad"),
    ]
    assert [b.machine_id for b in phases.blues] == ["a1", "a2", "s1"]


def test_the_green_of_a_stopped_blue_is_created_stopped() -> None:
    stopped = make_machine("a1", state=MachineState.STOPPED, desired=DesiredState.STOPPED)
    phases = bluegreen_phases(plan_deploy([stopped], ["ams"], "bluegreen"))
    assert [g.wait_started for g in phases.greens] == [False]


def test_the_canary_goes_to_the_first_running_machines_region() -> None:
    stopped = make_machine("a1", state=MachineState.STOPPED, desired=DesiredState.STOPPED)
    running = make_machine("s1", "sin", created_minute=1)
    plan = plan_deploy([stopped, running], ["ams", "sin"], "canary")
    assert canary_step(plan) == DeployStep(kind="create", region="sin")


def test_a_first_deploy_has_no_canary() -> None:
    assert canary_step(plan_deploy([], ["ams"], "canary")) is None


def test_bluegreen_without_a_health_check_is_refused_with_the_fix() -> None:
    with pytest.raises(ValidationError, match="bluegreen strategy needs at least one") as info:
        check_strategy("bluegreen", 0)
    assert info.value.hint and "checks" in info.value.hint
    check_strategy("bluegreen", 1)
    for other in ("rolling", "immediate", "canary"):
        check_strategy(other, 0)  # type: ignore[arg-type]


# -- the rollout's order ------------------------------------------------------


def test_canary_first_creates_waits_and_retires_one_machine_then_rolls() -> None:
    machines = three_machines()
    client = FakeRolloutClient(machines)
    result, progress = run(client, machines, ["ams", "sin"], "canary")
    assert result.ok, result.failure
    assert client.calls == [
        ("create", "ams"),
        ("wait", "new1"),
        ("stop", "new1"),
        ("wait-stopped", "new1"),
        ("destroy", "new1"),
        ("update", "a1"),
        ("wait", "a1"),
        ("update", "a2"),
        ("wait", "a2"),
        ("update", "s1"),
        ("wait", "s1"),
    ]
    assert "new1" not in client.machines
    assert all(m.config.image == NEW_IMAGE for m in client.machines.values())
    assert [p.phase for p in progress][:4] == ["begin", "launched", "started", "destroyed"]


def test_a_failing_canary_stops_the_deploy_before_any_machine_is_touched() -> None:
    machines = three_machines()
    client = FakeRolloutClient(machines)
    client.checks_after["new1"] = None  # its checks never pass
    result, _ = run(client, machines, ["ams", "sin"], "canary", checks=True, wait_timeout=5)
    assert not result.ok and result.failure is not None
    assert "new1 checks not passing" in result.failure
    assert not any(kind == "update" for kind, _ in client.calls)
    assert ("destroy", "new1") in client.calls and "new1" not in client.machines


def test_bluegreen_keeps_greens_cordoned_until_healthy_and_cordons_blues_before_retiring() -> None:
    machines = three_machines()
    client = FakeRolloutClient(machines)
    for green in ("new1", "new2", "new3"):
        client.checks_after[green] = 1
    result, progress = run(client, machines, ["ams", "sin"], "bluegreen", checks=True)
    assert result.ok, result.failure
    calls = client.calls
    assert calls[:3] == [
        ("create-cordoned", "ams"),
        ("create-cordoned", "ams"),
        ("create-cordoned", "sin"),
    ]
    last_green_wait = max(i for i, (kind, _) in enumerate(calls) if kind == "wait")
    first_uncordon = calls.index(("uncordon", "new1"))
    assert last_green_wait < first_uncordon  # no green is routable before every green is healthy
    assert calls[first_uncordon:] == [
        ("uncordon", "new1"),
        ("uncordon", "new2"),
        ("uncordon", "new3"),
        ("cordon", "a1"),  # every green serves before any blue leaves the routing table
        ("cordon", "a2"),
        ("cordon", "s1"),
        ("stop", "a1"),  # and every blue is out of it before the first is stopped
        ("wait-stopped", "a1"),
        ("destroy", "a1"),
        ("stop", "a2"),
        ("wait-stopped", "a2"),
        ("destroy", "a2"),
        ("stop", "s1"),
        ("wait-stopped", "s1"),
        ("destroy", "s1"),
    ]
    healthy = [p.machine for p in progress if p.phase == "healthy" and p.machine]
    assert sorted(m.id for m in healthy) == ["new1", "new2", "new3"]
    assert all(m.cordoned for m in healthy)  # healthy, and still cordoned then
    assert [p.machine.id for p in progress if p.phase == "ready" and p.machine] == [
        "new1",
        "new2",
        "new3",
    ]
    assert sorted(client.machines) == ["new1", "new2", "new3"]
    assert not any(m.cordoned for m in client.machines.values())
    assert sorted(m.id for m in result.machines) == ["new1", "new2", "new3"]
    assert not any(kind == "update" for kind, _ in calls)


def test_a_failing_green_destroys_the_greens_and_leaves_every_blue_serving() -> None:
    machines = three_machines()
    client = FakeRolloutClient(machines)
    client.checks_after.update({"new1": 1, "new2": None, "new3": 1})
    result, _ = run(client, machines, ["ams", "sin"], "bluegreen", checks=True, wait_timeout=5)
    assert not result.ok and result.failure is not None
    assert "new2 checks not passing" in result.failure
    assert sorted(client.machines) == ["a1", "a2", "s1"]
    assert all(client.machines[b].state is MachineState.STARTED for b in ("a1", "a2", "s1"))
    assert not any(client.machines[b].cordoned for b in ("a1", "a2", "s1"))
    assert not any(kind in ("uncordon", "cordon") for kind, _ in client.calls)  # no green routed
    assert not any(kind == "stop" and m in ("a1", "a2", "s1") for kind, m in client.calls)


def test_a_green_that_cannot_be_uncordoned_fails_the_deploy_and_the_blues_keep_serving() -> None:
    machines = three_machines()
    client = FakeRolloutClient(machines)
    client.checks_after.update({"new1": 1, "new2": 1, "new3": 1})
    client.refuse_cordon.add("new2")
    result, _ = run(client, machines, ["ams", "sin"], "bluegreen", checks=True)
    assert result.failure == "could not uncordon new2: machine new2 refused the uncordon"
    assert sorted(client.machines) == ["a1", "a2", "s1"]
    assert not any(kind == "cordon" for kind, _ in client.calls)
    assert all(client.machines[b].state is MachineState.STARTED for b in ("a1", "a2", "s1"))


def test_a_blue_refusing_the_cordon_is_told_and_retired_a_stopped_blue_is_not_cordoned() -> None:
    stopped = make_machine("a2", state=MachineState.STOPPED, desired=DesiredState.STOPPED)
    machines = [make_machine("a1"), stopped]
    client = FakeRolloutClient(machines)
    client.checks_after.update({"new1": 1})
    client.refuse_cordon.add("a1")
    result, progress = run(client, machines, ["ams"], "bluegreen", checks=True)
    assert result.ok, result.failure
    assert ("uncordon", "new2") in client.calls  # the stopped green can be woken, as its blue
    assert [c for c in client.calls if c[0] == "cordon"] == [("cordon", "a1")]
    notes = [p.detail for p in progress if p.phase == "note"]
    assert notes == ["could not cordon a1: machine a1 refused the cordon"]
    assert sorted(client.machines) == ["new1", "new2"]
