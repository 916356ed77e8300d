"""Health-check scheduling: fast until first pass (for a minute at most), then at the
interval; changes only."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from ferry.agent.checks import FAST_WINDOW, MAX_EVENT_STATUS, CheckTracker, machine_checks
from ferry.model import (
    CheckConfig,
    DesiredState,
    Machine,
    MachineConfig,
    MachineState,
    ServiceConfig,
)
from ferry.net.probe import ProbeResult

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def machine_with_checks(mid: str = "m1", ip: str = "10.77.17.2") -> Machine:
    config = MachineConfig(
        image="img",
        checks={"alive": CheckConfig(type="tcp", port=8080, interval="10s")},
        services=[ServiceConfig(internal_port=8080, checks=[CheckConfig(path="/health")])],
    )
    return Machine(
        id=mid,
        name=mid,
        app_name="app",
        state=MachineState.STARTED,
        desired_state=DesiredState.STARTED,
        region="ams",
        instance_id="i1",
        private_ip="fdaa:0:1:0:1:0:1:2",
        host_ip=ip,
        config=config,
        host_id="ams-1",
        created_at=NOW,
        updated_at=NOW,
    )


def test_service_checks_get_the_service_port() -> None:
    checks = machine_checks(machine_with_checks())
    assert set(checks) == {"alive", "servicecheck-00-http-8080"}
    assert checks["servicecheck-00-http-8080"].port == 8080


def test_results_are_reported_only_when_they_change() -> None:
    now = [0.0]
    answers = {"alive": [False, True, True], "/health": [True, True, True]}
    calls: list[str] = []

    class Prober:
        async def probe(self, address: str, port: int, check: CheckConfig) -> ProbeResult:
            key = "alive" if check.type == "tcp" else check.path
            calls.append(key)
            return ProbeResult(answers[key].pop(0), "ok")

    tracker = CheckTracker(clock=lambda: now[0], prober=Prober())
    m = machine_with_checks()
    first = tracker.run_due([m])
    assert [r["status"] for r in first[0][1]] == ["critical", "passing"]
    now[0] = 0.3  # the failing check is retried fast; the passing one waits its interval
    second = tracker.run_due([m])
    assert [r["status"] for r in second[0][1]] == ["passing", "passing"]
    assert calls == ["alive", "/health", "alive"]
    now[0] = 0.6
    assert tracker.run_due([m]) == []  # nothing due: both passed, intervals not elapsed


class OneBadMachine:
    """Passes every check but those of ``bad_ip``, whose probe raises (a prober bug)."""

    def __init__(self, bad_ip: str) -> None:
        self.bad_ip = bad_ip

    async def probe(self, address: str, port: int, check: CheckConfig) -> ProbeResult:
        if address == self.bad_ip:
            raise ValueError("malformed answer")
        return ProbeResult(True, "ok")


class Sink:
    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.reports: list[tuple[str, str, list[str]]] = []

    def report_status(self, host_id: str, machine_id: str, *args: Any, **kw: Any) -> object:
        if machine_id in self.refuse:
            raise RuntimeError("control plane said something odd")
        event_status = args[3]
        assert len(event_status) <= MAX_EVENT_STATUS
        self.reports.append((machine_id, event_status, [c.status for c in kw["checks"]]))
        return None


def test_a_machine_whose_probe_raises_is_critical_and_the_others_still_pass() -> None:
    tracker = CheckTracker(clock=lambda: 0.0, prober=OneBadMachine("10.0.0.2"))
    good, bad = machine_with_checks("m1", "10.0.0.1"), machine_with_checks("m2", "10.0.0.2")
    changed = dict((m.id, r) for m, r in tracker.run_due([bad, good]))
    assert [r["status"] for r in changed["m1"]] == ["passing", "passing"]
    assert [r["status"] for r in changed["m2"]] == ["critical", "critical"]
    assert "ValueError: malformed answer" in changed["m2"][0]["output"]


def test_a_failed_report_is_sent_again_and_does_not_stop_the_others() -> None:
    now = [0.0]
    tracker = CheckTracker(clock=lambda: now[0], prober=OneBadMachine("none"))
    machines = [machine_with_checks("m1", "10.0.0.1"), machine_with_checks("m2", "10.0.0.2")]
    sink = Sink(refuse={"m1"})
    tracker.check_and_report(machines, sink, "ams-1")
    assert [r[0] for r in sink.reports] == ["m2"]
    sink.refuse.clear()
    now[0] = 0.01  # nothing changed and nothing is due, but m1's results never arrived
    tracker.check_and_report(machines, sink, "ams-1")
    assert [r[0] for r in sink.reports] == ["m2", "m1"]
    assert sink.reports[1][2] == ["passing", "passing"]


def test_a_new_reason_for_a_still_failing_check_is_reported() -> None:
    now = [0.0]
    outputs = ["connection refused", "not an HTTP answer", "not an HTTP answer"]

    class Failing:
        async def probe(self, address: str, port: int, check: CheckConfig) -> ProbeResult:
            return ProbeResult(False, outputs[0] if check.type == "http" else "refused")

    tracker = CheckTracker(clock=lambda: now[0], prober=Failing())
    m = machine_with_checks()
    assert tracker.run_due([m])  # first results
    outputs.pop(0)
    now[0] = 0.3
    (changed,) = tracker.run_due([m])
    assert changed[1][1]["output"] == "not an HTTP answer"
    now[0] = 0.6
    assert tracker.run_due([m]) == []  # same status, same reason: nothing to report


def test_a_check_that_never_passes_slows_to_its_interval_after_the_fast_window() -> None:
    """A replica's `/primary` fails by design: probed fast for a minute, then every 10 s."""
    now = [0.0]
    calls: list[float] = []

    class NeverPasses:
        async def probe(self, address: str, port: int, check: CheckConfig) -> ProbeResult:
            if check.type == "tcp":
                calls.append(now[0])
            return ProbeResult(False, "HTTP 503")

    tracker = CheckTracker(clock=lambda: now[0], prober=NeverPasses())
    m = machine_with_checks()
    for step in range(400):  # 100 s in quarter seconds
        now[0] = step * 0.25
        tracker.run_due([m])

    fast = [t for t in calls if t < FAST_WINDOW]
    slow = [t for t in calls if t >= FAST_WINDOW]
    assert len(fast) == FAST_WINDOW / 0.25  # every quarter second for the first minute
    assert [b - a for a, b in itertools.pairwise(slow)] == [10.0] * (len(slow) - 1)
    assert len(slow) in (4, 5)  # then the configured 10 s
