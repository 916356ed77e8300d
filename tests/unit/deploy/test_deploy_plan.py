from __future__ import annotations

import pytest

from ferry.deploy.plan import choose_regions, parse_regions, plan_deploy
from ferry.errors import ValidationError
from ferry.model import DesiredState, MachineState
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
        plan_deploy([], ["ams"], "bluegreen")  # type: ignore[arg-type]
