"""autostop = "suspend": an idle machine is suspended, not stopped; a suspended one can be
started again by scale-out like a stopped one."""

from __future__ import annotations

from datetime import timedelta

from ferry.autoscale.decisions import is_stopped
from ferry.autoscale.idle import autostop_kind, idle_stops
from ferry.model import DesiredState, MachineConfig

from .builders import T0, machine


def test_an_idle_machine_with_autostop_suspend_is_suspended() -> None:
    asleep, awake = machine("m1", autostop="suspend"), machine("m2", autostop="stop")
    active = {"m1": T0 - timedelta(seconds=400), "m2": T0 - timedelta(seconds=400)}
    decisions = idle_stops([asleep, awake], {"ams": 0}, active, T0, 300)
    assert [(d.kind, d.machine_id) for d in decisions] == [("suspend", "m1"), ("stop", "m2")]
    assert decisions[0].reason.endswith("keeping at least 0: suspend")


def test_one_service_asking_for_stop_wins_over_suspend() -> None:
    m = machine("m1", autostop="suspend")
    services = [*m.config.model_dump()["services"], {"internal_port": 9000, "autostop": "stop"}]
    mixed = m.model_copy(
        update={
            "config": MachineConfig.model_validate({**m.config.model_dump(), "services": services})
        }
    )
    assert autostop_kind(m) == "suspend"
    assert autostop_kind(mixed) == "stop"


def test_a_suspended_machine_counts_as_one_that_can_be_started_again() -> None:
    suspended = machine("m1").model_copy(update={"desired_state": DesiredState.SUSPENDED})
    assert is_stopped(suspended)
