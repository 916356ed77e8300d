"""The agent's side of Flycast's host path (``ferry.agent.flycast_host``): its own checks
gate each port, the table is loaded on change and again before its rules expire, and a
stopping agent empties it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from ferry.agent.flycast_host import REFRESH_SECONDS, HostFastPath, HostFastView, passing_ports
from ferry.errors import NetworkError
from ferry.model import (
    CheckConfig,
    DesiredState,
    Machine,
    MachineConfig,
    MachineState,
    ServiceConfig,
)
from ferry.model.mesh import EdgeFastPlan, FastForward
from ferry.net import sixpn
from ferry.net.flycast import flycast_address

NOW = datetime(2026, 12, 4, tzinfo=UTC)
ORG = 0x10
DB = flycast_address(ORG, 1)
CHECK = "servicecheck-00-http-5433"


def member(mid: str, number: int, *, cordoned: bool = False, checks: bool = True) -> Machine:
    service = ServiceConfig(
        internal_port=5433, checks=[CheckConfig(path="/primary", port=8008)] if checks else []
    )
    return Machine(
        id=mid, name=mid, app_name="db", state=MachineState.STARTED,
        desired_state=DesiredState.STARTED, region="ams", instance_id="i1",
        private_ip=str(sixpn.machine_address(ORG, 1, number)), host_ip=f"10.77.17.{number}",
        config=MachineConfig(image="img", services=[service]), host_id="ams-1",
        created_at=NOW, updated_at=NOW, cordoned=cordoned,
    )  # fmt: skip


def plan_to(*machines: Machine) -> EdgeFastPlan:
    forward = FastForward(
        address=str(DB), port=5432, organization=str(sixpn.org_prefix(ORG)),
        targets=[m.private_ip for m in machines], target_port=5433, app="db",
    )  # fmt: skip
    return EdgeFastPlan(region="ams", ports=[forward])


def results_of(statuses: dict[str, str]) -> Callable[[Machine], list[dict[str, str]]]:
    return lambda m: [{"name": CHECK, "status": statuses[m.id], "output": ""}]


def test_only_started_uncordoned_machines_whose_service_checks_pass_count() -> None:
    primary, replica, fresh = member("p", 1), member("r", 2), member("f", 3, checks=False)
    cordoned = member("c", 4, cordoned=True)
    statuses = {"p": "passing", "r": "critical", "f": "", "c": "passing"}
    local, passing = passing_ports([primary, replica, fresh, cordoned], results_of(statuses))
    assert set(local) == {sixpn.machine_address(ORG, 1, n) for n in (1, 2, 3)}
    assert passing == {(sixpn.machine_address(ORG, 1, n), 5433) for n in (1, 3)}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_host_loads_on_change_refreshes_before_expiry_and_empties_on_close() -> None:
    applied: list[str] = []
    view, clock = HostFastView(), Clock()
    path = HostFastPath(
        "ams", view, apply=lambda _netns, script: applied.append(script), clock=clock
    )
    primary = member("p", 1)
    passing, failing = results_of({"p": "passing"}), results_of({"p": "critical"})

    path.sync([primary], passing)  # no plan yet: an empty table (a killed agent's goes)
    assert len(applied) == 1 and "dnat" not in applied[0]
    view.plans = (plan_to(primary),)
    path.sync([primary], passing)
    assert len(applied) == 2 and "dnat" in applied[1]
    path.sync([primary], passing)
    assert len(applied) == 2  # unchanged, not due
    clock.now += REFRESH_SECONDS
    path.sync([primary], passing)
    assert len(applied) == 3  # the rule's element renewed, the rule (and its counter) kept
    assert applied[2].startswith("flush set") and f"{DB} . 5432 timeout" in applied[2]
    path.sync([primary], failing)  # demoted: the edge takes the port back
    assert len(applied) == 4 and "dnat" not in applied[3]
    clock.now += REFRESH_SECONDS
    path.sync([primary], failing)
    assert len(applied) == 4  # nothing to keep alive
    path.close()
    assert len(applied) == 5 and "dnat" not in applied[4]


def test_a_renewal_that_fails_loads_the_table_whole_next_pass() -> None:
    applied: list[str] = []
    clock = Clock()

    def apply(_netns: str | None, script: str) -> None:
        if script.startswith("flush set") and not any("flush" in a for a in applied):
            applied.append(script)
            raise NetworkError("No such file or directory (the table was deleted)")
        applied.append(script)

    view = HostFastView()
    primary = member("p", 1)
    view.plans = (plan_to(primary),)
    path = HostFastPath("ams", view, apply=apply, clock=clock)
    path.sync([primary], results_of({"p": "passing"}))
    clock.now += REFRESH_SECONDS
    path.sync([primary], results_of({"p": "passing"}))  # renewal refused
    path.sync([primary], results_of({"p": "passing"}))
    assert len(applied) == 3 and "dnat" in applied[2]  # the whole table again


def test_a_refused_load_is_tried_again_next_pass() -> None:
    calls: list[str] = []

    def refuse_once(_netns: str | None, script: str) -> None:
        calls.append(script)
        if len(calls) == 1:
            raise NetworkError("nft: busy")

    view = HostFastView()
    primary = member("p", 1)
    view.plans = (plan_to(primary),)
    path = HostFastPath("ams", view, apply=refuse_once, clock=Clock())
    path.sync([primary], results_of({"p": "passing"}))
    path.sync([primary], results_of({"p": "passing"}))
    assert len(calls) == 2 and "dnat" in calls[1]
