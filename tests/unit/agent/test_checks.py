"""Health-check scheduling: fast until first pass, then at the interval; changes only."""

from __future__ import annotations

from datetime import UTC, datetime

from ferry.agent.checks import CheckTracker, machine_checks
from ferry.model import (
    CheckConfig,
    DesiredState,
    Machine,
    MachineConfig,
    MachineState,
    ServiceConfig,
)

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def machine_with_checks() -> Machine:
    config = MachineConfig(
        image="img",
        checks={"alive": CheckConfig(type="tcp", port=8080, interval="10s")},
        services=[ServiceConfig(internal_port=8080, checks=[CheckConfig(path="/health")])],
    )
    return Machine(
        id="m1",
        name="m1",
        app_name="app",
        state=MachineState.STARTED,
        desired_state=DesiredState.STARTED,
        region="ams",
        instance_id="i1",
        private_ip="10.77.17.2",
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

    def prober(address: str, check: CheckConfig) -> tuple[bool, str]:
        key = "alive" if check.type == "tcp" else check.path
        calls.append(key)
        return answers[key].pop(0), "ok"

    tracker = CheckTracker(clock=lambda: now[0], prober=prober)
    m = machine_with_checks()
    first = tracker.run_due([m])
    assert [r["status"] for r in first[0][1]] == ["critical", "passing"]
    now[0] = 0.3  # the failing check is retried fast; the passing one waits its interval
    second = tracker.run_due([m])
    assert [r["status"] for r in second[0][1]] == ["passing", "passing"]
    assert calls == ["alive", "/health", "alive"]
    now[0] = 0.6
    assert tracker.run_due([m]) == []  # nothing due: both passed, intervals not elapsed
