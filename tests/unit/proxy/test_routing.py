"""The routing rule, one test per clause (pure: no I/O, seeded randomness)."""

from __future__ import annotations

import random

from ferry.model import Concurrency, DesiredState, MachineState
from ferry.proxy.routes import Backend, ServicePorts
from ferry.proxy.routing import Choice, NoRoute, RoutePrefs, route

RTT = {"fra": 10.0, "iad": 80.0, "syd": 250.0}


def machine(
    mid: str,
    region: str,
    *,
    soft: int = 2,
    hard: int | None = 4,
    state: MachineState = MachineState.STARTED,
) -> Backend:
    service = ServicePorts(
        internal_port=8080,
        ports=(80,),
        handlers=("http",),
        concurrency=Concurrency(type="requests", soft_limit=soft, hard_limit=hard),
    )
    return Backend(
        mid, f"{mid}-i", "web", region, "10.0.0.1", state, DesiredState.STARTED, (service,)
    )


def pick(
    backends: list[Backend],
    load: dict[str, int] | None = None,
    health: dict[str, bool] | None = None,
    prefs: RoutePrefs | None = None,
    *,
    spill: float = 0.0,
    seed: int = 1,
    checked: dict[str, bool] | None = None,
) -> Choice | NoRoute:
    return route(
        backends, "ams", RTT, load or {}, health or {}, prefs or RoutePrefs(), random.Random(seed),
        spill_rtt_ms=spill, checked=checked,
    )  # fmt: skip


def chosen(result: Choice | NoRoute) -> str:
    assert isinstance(result, Choice), result
    return result.backend.machine_id


def test_own_region_wins_over_a_nearer_listed_one() -> None:
    assert chosen(pick([machine("f", "fra"), machine("a", "ams")])) == "a"


def test_regions_are_ordered_by_rtt() -> None:
    assert chosen(pick([machine("s", "syd"), machine("i", "iad"), machine("f", "fra")])) == "f"


def test_equal_rtt_breaks_ties_by_region_code() -> None:
    backends = [machine("z", "zzz"), machine("b", "bbb")]
    result = route(
        backends, "ams", {"zzz": 5.0, "bbb": 5.0}, {}, {}, RoutePrefs(), random.Random(1)
    )
    assert chosen(result) == "b"


def test_stopped_and_unhealthy_machines_are_skipped() -> None:
    backends = [
        machine("a1", "ams", state=MachineState.STOPPED),
        machine("a2", "ams"),
        machine("f", "fra"),
    ]
    assert chosen(pick(backends)) == "a2"
    assert chosen(pick(backends, health={"a2": False})) == "f"


def test_least_loaded_under_soft_limit_is_chosen() -> None:
    backends = [machine("a1", "ams"), machine("a2", "ams")]
    assert chosen(pick(backends, load={"a1": 1, "a2": 0})) == "a2"


def test_ties_are_broken_at_random() -> None:
    backends = [machine("a1", "ams"), machine("a2", "ams")]
    seen = {chosen(pick(backends, seed=s)) for s in range(20)}
    assert seen == {"a1", "a2"}


def test_a_machine_under_soft_beats_a_less_loaded_rule_breaker() -> None:
    backends = [machine("a1", "ams", soft=1), machine("a2", "ams", soft=5)]
    # a1 is at its soft limit with 1; a2 under its soft limit with 2
    assert chosen(pick(backends, load={"a1": 1, "a2": 2})) == "a2"


def test_region_at_soft_limit_stays_local_by_default() -> None:
    backends = [machine("a1", "ams"), machine("f", "fra")]
    result = pick(backends, load={"a1": 3})
    assert chosen(result) == "a1"
    assert isinstance(result, Choice) and "soft limit" in result.reason


def test_spill_to_a_region_within_spill_rtt() -> None:
    backends = [machine("a1", "ams"), machine("f", "fra"), machine("i", "iad")]
    assert chosen(pick(backends, load={"a1": 3}, spill=20.0)) == "f"
    # iad is too far to spill to for a soft limit
    assert (
        chosen(pick([machine("a1", "ams"), machine("i", "iad")], load={"a1": 3}, spill=20.0))
        == "a1"
    )


def test_region_at_hard_limit_sends_to_the_next_region() -> None:
    backends = [machine("a1", "ams"), machine("a2", "ams"), machine("f", "fra")]
    assert chosen(pick(backends, load={"a1": 4, "a2": 4})) == "f"


def test_everything_at_hard_limit_is_overflow() -> None:
    result = pick([machine("a1", "ams"), machine("f", "fra")], load={"a1": 4, "f": 4})
    assert result == NoRoute("overflow", "all machines of web are at their hard limit")


def test_no_hard_limit_means_never_full() -> None:
    assert chosen(pick([machine("a1", "ams", hard=None)], load={"a1": 1000})) == "a1"


def test_no_started_machine_is_its_own_reason() -> None:
    result = pick([machine("a1", "ams", state=MachineState.STOPPED)])
    assert result == NoRoute("no_started", "web has no started machine")


def test_all_unhealthy_is_reported_as_such() -> None:
    result = pick([machine("a1", "ams")], health={"a1": False})
    assert result == NoRoute("unhealthy", "web has no healthy started machine")


def test_failed_connects_alone_never_take_the_last_machines_out() -> None:
    refused = {"a1": False}  # out of rotation for a failed connect only
    assert chosen(pick([machine("a1", "ams")], health=refused, checked={})) == "a1"
    forced = RoutePrefs(force_instance="a1")
    assert chosen(pick([machine("a1", "ams")], health=refused, checked={}, prefs=forced)) == "a1"
    # With a healthy sibling, even a far one, the refused machine sits out.
    both = [machine("a1", "ams"), machine("i", "iad")]
    assert chosen(pick(both, health=refused, checked={})) == "i"
    # A failing health check is authoritative.
    result = pick([machine("a1", "ams")], health=refused, checked=refused)
    assert result == NoRoute("unhealthy", "web has no healthy started machine")


def test_prefer_region_goes_first_but_falls_back() -> None:
    backends = [machine("a1", "ams"), machine("i", "iad")]
    assert chosen(pick(backends, prefs=RoutePrefs(prefer_region="iad"))) == "i"
    assert chosen(pick(backends, load={"i": 4}, prefs=RoutePrefs(prefer_region="iad"))) == "a1"


def test_force_instance_by_machine_or_instance_id() -> None:
    backends = [machine("a1", "ams"), machine("i", "iad")]
    assert chosen(pick(backends, prefs=RoutePrefs(force_instance="i"))) == "i"
    assert chosen(pick(backends, prefs=RoutePrefs(force_instance="i-i"))) == "i"
    missing = pick(backends, prefs=RoutePrefs(force_instance="nope"))
    assert isinstance(missing, NoRoute) and missing.kind == "no_candidate"
    full = pick(backends, load={"i": 4}, prefs=RoutePrefs(force_instance="i"))
    assert isinstance(full, NoRoute) and full.kind == "overflow"


def test_prefer_instance_falls_back_to_the_rule_when_that_machine_cannot_take_it() -> None:
    backends = [machine("a1", "ams"), machine("a2", "ams"), machine("i", "iad")]
    prefer = RoutePrefs(prefer_instance="a2")
    assert chosen(pick(backends, load={"a1": 0, "a2": 3}, prefs=prefer)) == "a2"  # under hard
    assert chosen(pick(backends, load={"a2": 4}, prefs=prefer)) == "a1"  # at its hard limit
    assert chosen(pick(backends, health={"a2": False}, prefs=prefer)) == "a1"
    gone = RoutePrefs(prefer_instance="gone", only_regions=frozenset({"ams"}))
    assert chosen(pick(backends, load={"a1": 1}, prefs=gone)) == "a2"
    nothing_here = RoutePrefs(prefer_instance="gone", only_regions=frozenset({"syd"}))
    result = pick(backends, prefs=nothing_here)
    assert isinstance(result, NoRoute) and result.kind == "no_candidate"


def test_replay_regions_and_elsewhere() -> None:
    backends = [machine("a1", "ams"), machine("a2", "ams"), machine("i", "iad")]
    assert chosen(pick(backends, prefs=RoutePrefs(only_regions=frozenset({"iad"})))) == "i"
    assert chosen(pick(backends, load={"a2": 1}, prefs=RoutePrefs(exclude_instance="a1"))) == "a2"
    none = pick(backends, prefs=RoutePrefs(only_regions=frozenset({"syd"})))
    assert none == NoRoute("no_candidate", "web has no started machine in syd")


def test_app_without_http_service_has_no_route() -> None:
    bare = Backend(
        "a1", "a1-i", "web", "ams", "10.0.0.1", MachineState.STARTED, DesiredState.STARTED
    )
    result = pick([bare])
    assert isinstance(result, NoRoute) and result.kind == "no_service"
