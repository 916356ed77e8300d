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


def test_a_machine_woken_before_the_next_cycle_is_not_stopped_again_at_once() -> None:
    """The idle stop, then a request wakes the machine before the autoscaler's next cycle
    ever sees it stopped: that cycle must see a machine just started, not one idle for
    long (before the fix it stopped it again and the waking request hung)."""
    from ferry.model.autoscale import AutoscalePolicy

    from .builders import Run, demand, kinds

    for mode in ("stop", "suspend"):
        run = Run(AutoscalePolicy(enabled=False, stop_idle_after=3), [machine("a1", autostop=mode)])
        quiet = demand(machines={"a1": (0, 7)})
        run.cycle(quiet)
        assert kinds(run.cycle(quiet, after=3)) == [(mode, "a1")]
        # woken again (desired started) within the same second; no request counted yet
        assert kinds(run.cycle(quiet, after=1)) == [("none", None)]
        assert kinds(run.cycle(quiet, after=2.5)) == [("none", None)]
        assert kinds(run.cycle(quiet, after=1)) == [(mode, "a1")]  # idle 3 s since the wake
