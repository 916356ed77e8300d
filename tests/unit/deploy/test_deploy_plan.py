from __future__ import annotations

import itertools
import math

import pytest

from ferry.deploy.plan import (
    DeployStep,
    check_max_unavailable,
    choose_regions,
    parse_max_unavailable,
    parse_regions,
    plan_deploy,
    rolling_batch_size,
    rolling_batches,
)
from ferry.errors import ValidationError
from ferry.model import DesiredState, Machine, MachineState
from tests.unit.deploy.deploy_fakes import make_machine

CLUSTER = ["ams", "iad", "sin"]


def test_requested_regions_win_and_are_validated() -> None:
    machines = [make_machine("a1", "ams")]
    assert choose_regions(["sin", "iad"], machines, "ams", CLUSTER) == ["sin", "iad"]
    with pytest.raises(ValidationError) as error:
        choose_regions(["ams", "xyz"], machines, None, CLUSTER)
    assert "unknown region 'xyz'" in error.value.message
    assert "known regions: ams, iad, sin" in error.value.message


def test_regions_default_to_existing_machines_then_primary_then_first() -> None:
    machines = [make_machine("i1", "iad"), make_machine("s1", "sin"), make_machine("i2", "iad")]
    assert choose_regions(None, machines, "ams", CLUSTER) == ["iad", "sin"]
    assert choose_regions(None, [], "sin", CLUSTER) == ["sin"]
    assert choose_regions(None, [], None, ["sin", "ams"]) == ["ams"]


def test_destroyed_machines_do_not_decide_regions() -> None:
    gone = make_machine("g1", "iad", state=MachineState.DESTROYED, desired=DesiredState.DESTROYED)
    assert choose_regions(None, [gone], "ams", CLUSTER) == ["ams"]


def test_empty_cluster_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="no regions"):
        choose_regions(None, [], None, [])


def test_parse_regions_keeps_order_and_drops_duplicates() -> None:
    assert parse_regions(" ams, IAD,ams,,sin ") == ["ams", "iad", "sin"]
    assert parse_regions(None) is None
    with pytest.raises(ValidationError):
        parse_regions(" , ")


def test_plan_updates_every_machine_in_target_regions_and_creates_where_missing() -> None:
    machines = [
        make_machine("a2", "ams", created_minute=5),
        make_machine("a1", "ams", created_minute=1),
        make_machine("s1", "sin"),
    ]
    plan = plan_deploy(machines, ["ams", "iad"], "rolling")
    assert [(s.kind, s.region, s.machine_id) for s in plan.steps] == [
        ("update", "ams", "a1"),
        ("update", "ams", "a2"),
        ("create", "iad", None),
    ]
    # The machine in sin was not asked for: it is left alone.
    assert all(step.region != "sin" for step in plan.steps)
    assert plan.steps[0].instance_id == "inst-a1-1"


def test_stopped_machine_is_updated_without_waiting_for_it_to_start() -> None:
    stopped = make_machine("a1", state=MachineState.STOPPED, desired=DesiredState.STOPPED)
    (step,) = plan_deploy([stopped], ["ams"], "immediate").steps
    assert step.kind == "update" and not step.wait_started


def test_machine_being_destroyed_is_neither_updated_nor_counted() -> None:
    dying = make_machine("a1", desired=DesiredState.DESTROYED)
    (step,) = plan_deploy([dying], ["ams"], "rolling").steps
    assert step.kind == "create"


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValidationError, match="strategy"):
        plan_deploy([], ["ams"], "blue-green")  # type: ignore[arg-type]


def running(machine_id: str, region: str) -> DeployStep:
    return DeployStep("update", region, machine_id)


def stopped(machine_id: str, region: str) -> DeployStep:
    return DeployStep("update", region, machine_id, wait_started=False)


def create(region: str) -> DeployStep:
    return DeployStep("create", region)


def ids(batches: list[tuple[DeployStep, ...]]) -> list[list[str]]:
    return [[step.machine_id or f"new-{step.region}" for step in batch] for batch in batches]


def one_per_region(count: int) -> list[DeployStep]:
    return [running(f"m{i}", f"r{i}") for i in range(count)]


@pytest.mark.parametrize(
    ("max_unavailable", "machines", "size"),
    [
        (1, 10, 1),
        (2, 10, 2),
        (3.0, 10, 3),  # fly.toml integers arrive as floats
        (25, 4, 25),  # a count above the machine count is just "all of them"
        (0.33, 10, 3),  # the default: a Fly user with 10 machines sees 3 at once
        (0.33, 9, 2),  # 2.97 rounds down
        (0.33, 2, 1),  # never below one
        (0.5, 5, 2),
        (0.99, 1, 1),  # n = 1
        (0.5, 0, 1),  # nothing running (first deploy): still one at a time
        (0.29, 100, 29),  # 0.29 * 100 is 28.999... in binary floats
    ],
)
def test_batch_size_is_a_count_or_a_fraction_rounded_down(
    max_unavailable: float, machines: int, size: int
) -> None:
    assert rolling_batch_size(max_unavailable, machines) == size


def test_a_count_batches_in_plan_order() -> None:
    assert ids(rolling_batches(one_per_region(5), 2)) == [["m0", "m1"], ["m2", "m3"], ["m4"]]


def test_one_at_a_time_keeps_every_step_alone_and_in_order() -> None:
    steps = [running("a1", "ams"), running("a2", "ams"), create("iad"), stopped("s1", "sin")]
    assert rolling_batches(steps, 1) == [(step,) for step in steps]


def test_default_fraction_of_ten_machines_replaces_three_at_once() -> None:
    batches = rolling_batches(one_per_region(10), 0.33)
    assert [len(batch) for batch in batches] == [3, 3, 3, 1]


def test_a_region_with_two_machines_keeps_one_serving_in_every_batch() -> None:
    steps = [running("a1", "ams"), running("a2", "ams"), running("s1", "sin"), running("i1", "iad")]
    # a2 would take ams down entirely next to a1: it waits, and the next regions move up.
    assert ids(rolling_batches(steps, 3)) == [["a1", "s1", "i1"], ["a2"]]
    assert ids(rolling_batches(steps, 10)) == [["a1", "s1", "i1"], ["a2"]]
    assert ids(rolling_batches(steps, 2)) == [["a1", "s1"], ["a2", "i1"]]


def test_a_region_with_one_machine_is_not_guarded() -> None:
    steps = [running("a1", "ams"), running("s1", "sin")]
    assert ids(rolling_batches(steps, 2)) == [["a1", "s1"]]


def test_a_large_region_is_replaced_in_batches_that_leave_one_machine() -> None:
    steps = [running(f"a{i}", "ams") for i in range(4)]
    assert ids(rolling_batches(steps, 10)) == [["a0", "a1", "a2"], ["a3"]]


def test_creates_join_batches_and_do_not_raise_the_fraction() -> None:
    steps = [running("a1", "ams"), running("a2", "ams"), create("iad"), create("sin")]
    # n counts the two running machines only: 0.5 of 2 is one step at a time.
    assert rolling_batch_size(0.5, 2) == 1
    assert ids(rolling_batches(steps, 0.5)) == [["a1"], ["a2"], ["new-iad"], ["new-sin"]]
    # With room, a create joins the batch its ams neighbour could not.
    assert ids(rolling_batches(steps, 2)) == [["a1", "new-iad"], ["a2", "new-sin"]]


def test_stopped_machines_are_batched_freely() -> None:
    steps = [running("a1", "ams"), running("a2", "ams"), stopped("a3", "ams"), stopped("a4", "ams")]
    # ams has two running machines: a1 and a2 never share a batch; the stopped ones
    # serve nothing, so they may go with either.
    assert ids(rolling_batches(steps, 3)) == [["a1", "a3", "a4"], ["a2"]]
    # Stopped machines do not count in n: 0.5 of 2 running machines is 1.
    assert ids(rolling_batches(steps, 0.5)) == [["a1"], ["a2"], ["a3"], ["a4"]]


def test_every_step_lands_in_exactly_one_batch_within_the_limits() -> None:
    shapes = ["ams", "ams", "ams", "sin", "sin", "iad", "fra", "fra"]
    for count, value in itertools.product(range(len(shapes) + 1), (1, 2, 3, 5, 0.33, 0.5, 0.9)):
        steps = [running(f"m{i}", region) for i, region in enumerate(shapes[:count])]
        steps += [create("nrt"), stopped("x1", "ams")]
        batches = rolling_batches(steps, value)
        assert sorted(s.label for b in batches for s in b) == sorted(s.label for s in steps)
        per_region = {r: shapes[:count].count(r) for r in set(shapes[:count])}
        size = rolling_batch_size(value, count)
        for batch in batches:
            assert 1 <= len(batch) <= size
            for region, total in per_region.items():
                taken = sum(1 for s in batch if s.region == region and s.wait_started)
                assert total < 2 or taken < total


@pytest.mark.parametrize("value", [0, -1, 2.5, 1.5, math.nan, math.inf])
def test_invalid_max_unavailable_is_refused(value: float) -> None:
    with pytest.raises(ValidationError, match="whole number of machines"):
        check_max_unavailable(value)
    with pytest.raises(ValidationError):
        rolling_batches(one_per_region(2), value)


def test_max_unavailable_flag_parses_like_the_fly_toml_key() -> None:
    assert parse_max_unavailable("3") == 3.0
    assert parse_max_unavailable(" 0.25 ") == 0.25
    assert parse_max_unavailable("1.0") == 1.0
    with pytest.raises(ValidationError, match="--max-unavailable must be a number, got 'lots'"):
        parse_max_unavailable("lots")
    with pytest.raises(ValidationError, match="--max-unavailable must be a whole number"):
        parse_max_unavailable("0")


def test_planned_steps_batch_with_the_region_guard() -> None:
    machines: list[Machine] = [
        make_machine("a1", "ams"),
        make_machine("a2", "ams", created_minute=1),
        make_machine("s1", "sin"),
    ]
    plan = plan_deploy(machines, ["ams", "sin", "iad"], "rolling")
    assert ids(rolling_batches(plan.steps, 3)) == [["a1", "s1", "new-iad"], ["a2"]]
