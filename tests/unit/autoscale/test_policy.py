"""The autoscaler's pure decision, one rule per test."""

from __future__ import annotations

from ferry.autoscale.demand import AppDemand, RegionDemand
from ferry.autoscale.policy import allocate
from ferry.model.autoscale import AutoscalePolicy

from .builders import Run, demand, kinds, machine

SCALE = AutoscalePolicy(
    regions=["ams", "sin"],
    min_per_region=1,
    max_per_region=3,
    max_total=10,
    scale_out_after=30,
    scale_in_after=60,
)


def test_sustained_shortfall_creates_with_a_reason_naming_the_numbers() -> None:
    run = Run(SCALE, [machine("a1", "ams"), machine("s1", "sin")])
    busy = demand({"sin": 14.2})

    assert kinds(run.cycle(busy)) == [("none", None)]
    assert kinds(run.cycle(busy, after=20)) == [("none", None)]
    outcome = run.cycle(busy, after=11)

    assert kinds(outcome) == [("create", "sin"), ("create", "sin")]
    assert outcome.decisions[0].reason == (
        "sin: concurrency 14.2 / target 5 needs 3 machines, 1 running, "
        "for 31s (>= scale_out_after 30s): create"
    )
    assert outcome.regions["sin"].desired == 3


def test_transient_demand_does_nothing() -> None:
    run = Run(SCALE, [machine("a1", "ams"), machine("s1", "sin")])

    run.cycle(demand({"sin": 14}))
    run.cycle(demand({"sin": 0}), after=10)  # the burst is gone: the clock restarts
    outcome = run.cycle(demand({"sin": 14}), after=25)

    assert kinds(outcome) == [("none", None)]
    assert kinds(run.cycle(demand({"sin": 14}), after=29)) == [("none", None)]
    assert kinds(run.cycle(demand({"sin": 14}), after=1))[0] == ("create", "sin")


def test_desired_counts_are_clamped_to_min_max_and_max_total() -> None:
    policy = AutoscalePolicy(
        regions=["ams", "iad", "sin"], min_per_region=1, max_per_region=3, max_total=5
    )
    wanted = {"ams": 10, "iad": 0, "sin": 2}
    load = {"ams": 50.0, "iad": 0.0, "sin": 9.0}

    assert allocate(wanted, policy, load) == {"ams": 3, "iad": 1, "sin": 1}
    run = Run(policy, [machine("a1", "ams"), machine("i1", "iad"), machine("s1", "sin")])
    outcome = run.cycle(demand({"ams": 50, "sin": 9}))
    assert {r: v.desired for r, v in outcome.regions.items()} == {"ams": 3, "iad": 1, "sin": 1}


def test_max_total_caps_creations_across_regions() -> None:
    policy = AutoscalePolicy(
        regions=["ams", "sin"], max_per_region=3, max_total=3, scale_out_after=0
    )
    run = Run(policy, [machine("a1", "ams"), machine("s1", "sin")])

    outcome = run.cycle(demand({"ams": 100, "sin": 100}))

    assert kinds(outcome) == [("create", "ams")]


def test_demand_from_a_region_without_machines_goes_to_the_nearest_allowed_region() -> None:
    policy = AutoscalePolicy(regions=["ams", "sin"], scale_out_after=0)
    run = Run(policy, [machine("a1", "ams"), machine("s1", "sin")])

    outcome = run.cycle(demand({"syd": 12}))  # syd-sin 95 ms, syd-ams 234 ms

    assert kinds(outcome) == [("create", "sin"), ("create", "sin")]
    assert "concurrency 12.0 (incl. 12.0 from syd)" in outcome.decisions[0].reason
    assert outcome.regions["sin"].desired == 3 and outcome.regions["ams"].desired == 0


def test_a_stopped_machine_is_started_before_one_is_created() -> None:
    policy = AutoscalePolicy(regions=["ams", "sin"], scale_out_after=0)
    run = Run(policy, [machine("a1", "ams"), machine("s1", "sin", state="stopped")])

    outcome = run.cycle(demand({"sin": 9}))

    assert kinds(outcome) == [("start", "s1"), ("create", "sin")]
    assert outcome.decisions[0].reason.endswith(": start s1")


def test_scale_in_stops_the_least_loaded_machine_one_per_region_per_cycle() -> None:
    machines = [machine("a1"), machine("a2"), machine("a3"), machine("s1", "sin")]
    run = Run(SCALE, machines)
    load = demand({"ams": 4}, machines={"a1": (3, 10), "a2": (0, 10), "a3": (1, 10)})

    assert kinds(run.cycle(load)) == [("none", None)]
    outcome = run.cycle(load, after=60)

    assert kinds(outcome) == [("stop", "a2")]
    assert "needs 1 machine, 3 running, for 60s (>= scale_in_after 60s)" in (
        outcome.decisions[0].reason
    )


def test_a_region_sending_requests_keeps_a_machine_though_in_flight_samples_are_zero() -> None:
    """Light steady traffic samples 0 in flight; stopping its only machine would make
    the edge wake it again at once, over and over."""
    policy = AutoscalePolicy(regions=["iad", "sin"], scale_in_after=0)
    run = Run(policy, [machine("i1", "iad"), machine("s1", "sin")])
    light = AppDemand(regions={"iad": RegionDemand(rate=40.0, concurrency=0.0)}, edges=1)

    outcome = run.cycle(light, after=60)

    assert ("stop", "i1") not in kinds(outcome)
    assert outcome.regions["iad"].desired == 1


def test_scale_in_stops_first_and_destroys_only_after_the_cool_down() -> None:
    policy = AutoscalePolicy(regions=["ams"], scale_in_after=0, destroy_after=600)
    run = Run(policy, [machine("a1", "ams"), machine("a2", "ams", age=10)])
    quiet = demand({"ams": 0})

    assert kinds(run.cycle(quiet)) == [("stop", "a2")]  # the newer of two idle machines
    run.machines = [machine("a1", "ams"), machine("a2", "ams", state="stopped")]
    assert kinds(run.cycle(quiet, after=300)) == [("none", None)]
    outcome = run.cycle(quiet, after=300)

    assert kinds(outcome) == [("destroy", "a2")]
    assert "stopped by scale-in 600s ago (>= destroy_after 600s)" in outcome.decisions[0].reason


def test_destroy_never_goes_below_min_per_region() -> None:
    policy = AutoscalePolicy(
        regions=["ams"], min_per_region=2, max_per_region=3, scale_in_after=0, destroy_after=0
    )
    run = Run(policy, [machine("a1"), machine("a2"), machine("a3", age=5)])

    assert kinds(run.cycle(demand({"ams": 0}))) == [("stop", "a3")]
    run.machines = [machine("a1"), machine("a2"), machine("a3", state="stopped")]
    assert kinds(run.cycle(demand({"ams": 0}), after=1)) == [("destroy", "a3")]
    run.machines = [machine("a1"), machine("a2")]
    assert kinds(run.cycle(demand({"ams": 0}), after=1)) == [("none", None)]


def test_a_machine_stopped_by_idle_autostop_is_never_destroyed() -> None:
    policy = AutoscalePolicy(enabled=False, stop_idle_after=60, destroy_after=0)
    run = Run(policy, [machine("a1", autostop="stop")])

    run.cycle(demand())
    assert kinds(run.cycle(demand(), after=60)) == [("stop", "a1")]
    run.machines = [machine("a1", state="stopped", autostop="stop")]
    assert kinds(run.cycle(demand(), after=3600)) == [("none", None)]


def test_idle_autostop_keeps_min_machines_running_in_the_primary_region() -> None:
    policy = AutoscalePolicy(enabled=False, stop_idle_after=300)
    fleet = [machine(f"a{i}", autostop="stop", min_running=1, age=i) for i in range(3)]
    run = Run(policy, fleet)
    idle = demand(machines={m.id: (0, 5) for m in fleet})

    assert kinds(run.cycle(idle)) == [("none", None)]
    assert kinds(run.cycle(idle, after=299)) == [("none", None)]
    outcome = run.cycle(idle, after=1)

    assert kinds(outcome) == [("stop", "a0"), ("stop", "a1")]
    assert all("keeping at least 1" in d.reason for d in outcome.decisions)
    assert "idle for 300s (>= stop_idle_after 300s)" in outcome.decisions[0].reason


def test_idle_autostop_keeps_min_per_region_of_the_policy() -> None:
    policy = AutoscalePolicy(regions=["sin"], min_per_region=1, stop_idle_after=60)
    run = Run(
        policy, [machine("s1", "sin", autostop="stop"), machine("s2", "sin", autostop="stop")]
    )

    run.cycle(demand({"sin": 0}))
    outcome = run.cycle(demand({"sin": 0}), after=60)

    assert len([d for d in outcome.decisions if d.kind == "stop"]) == 1


def test_busy_machines_are_not_idle() -> None:
    policy = AutoscalePolicy(enabled=False, stop_idle_after=60)
    run = Run(policy, [machine("a1", autostop="stop"), machine("a2", autostop="stop")])

    run.cycle(demand(machines={"a1": (0, 5), "a2": (1, 5)}))
    outcome = run.cycle(demand(machines={"a1": (0, 9), "a2": (2, 5)}), after=60)

    assert kinds(outcome) == [("none", None)]  # a1 served 4 requests, a2 has requests in flight


def test_idle_autostop_acts_on_one_region_per_cycle() -> None:
    policy = AutoscalePolicy(enabled=False, stop_idle_after=10)
    run = Run(
        policy, [machine("a1", "ams", autostop="stop"), machine("s1", "sin", autostop="stop")]
    )

    run.cycle(demand())
    assert kinds(run.cycle(demand(), after=10)) == [("stop", "a1")]
    run.machines = [
        machine("a1", "ams", state="stopped", autostop="stop"),
        machine("s1", "sin", autostop="stop"),
    ]
    assert kinds(run.cycle(demand(), after=1)) == [("stop", "s1")]


def test_no_edge_reports_means_no_idle_stops() -> None:
    policy = AutoscalePolicy(enabled=False, stop_idle_after=10)
    run = Run(policy, [machine("a1", autostop="stop")])

    run.cycle(demand(edges=0))
    outcome = run.cycle(demand(edges=0), after=3600)

    assert kinds(outcome) == [("none", None)]
    assert outcome.decisions[0].reason.endswith("no edge reports")


def test_machines_with_autostop_off_are_never_idle_stopped() -> None:
    run = Run(AutoscalePolicy(enabled=False, stop_idle_after=10), [machine("a1", autostop="off")])

    run.cycle(demand())
    assert kinds(run.cycle(demand(), after=3600)) == [("none", None)]
