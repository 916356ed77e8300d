from __future__ import annotations

import pytest

from ferry.deploy.scale import default_scale_region, plan_scale
from ferry.errors import ValidationError
from ferry.model import MachineState
from tests.unit.deploy.deploy_fakes import make_machine


def test_scaling_up_copies_a_machine_of_that_region() -> None:
    machines = [make_machine("a1", "ams"), make_machine("s1", "sin", created_minute=9)]
    plan = plan_scale(machines, "ams", 3)
    assert plan.create == 2 and plan.destroy == ()
    assert plan.template is not None and plan.template.id == "a1"


def test_scaling_a_new_region_copies_any_machine() -> None:
    plan = plan_scale([make_machine("a1", "ams")], "iad", 1)
    assert plan.create == 1 and plan.template is not None and plan.template.id == "a1"


def test_scaling_down_removes_failed_then_stopped_then_newest() -> None:
    machines = [
        make_machine("old", created_minute=1),
        make_machine("new", created_minute=9),
        make_machine("stopped", state=MachineState.STOPPED, created_minute=2),
        make_machine("failed", state=MachineState.FAILED, created_minute=3),
    ]
    assert [m.id for m in plan_scale(machines, "ams", 1).destroy] == ["failed", "stopped", "new"]
    assert plan_scale(machines, "ams", 0).create == 0


def test_scaling_an_app_without_machines_says_deploy_first() -> None:
    with pytest.raises(ValidationError) as error:
        plan_scale([], "ams", 2)
    assert "deploy first" in (error.value.hint or "")


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValidationError):
        plan_scale([make_machine("a1")], "ams", -1)


def test_default_region_is_primary_or_the_only_region() -> None:
    assert default_scale_region([make_machine("a1", "sin")], "ams") == "ams"
    assert default_scale_region([make_machine("a1", "sin")], None) == "sin"
    two = [make_machine("a1", "sin"), make_machine("a2", "iad")]
    with pytest.raises(ValidationError, match="several regions"):
        default_scale_region(two, None)
