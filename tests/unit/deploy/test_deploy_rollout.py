from __future__ import annotations

import pytest

from ferry.deploy.plan import DeployStep, Strategy, plan_deploy
from ferry.deploy.rollout import Progress, Rollout, RolloutResult
from ferry.errors import ValidationError
from ferry.model import CheckConfig, Machine, MachineConfig
from tests.unit.deploy.deploy_fakes import FakeClock, FakeRolloutClient, make_machine

NEW_IMAGE = "reg/web@sha256:" + "1" * 64


def config_for(checks: bool) -> MachineConfig:
    return MachineConfig(image=NEW_IMAGE, checks={"http": CheckConfig(port=8080)} if checks else {})


def run(
    client: FakeRolloutClient,
    machines: list[Machine],
    regions: list[str],
    strategy: Strategy,
    *,
    checks: bool = False,
    wait_timeout: float = 60,
    max_unavailable: float = 1,
) -> tuple[RolloutResult, list[Progress]]:
    progress: list[Progress] = []
    rollout = Rollout(
        client,
        "web",
        lambda _step: config_for(checks),
        wait_timeout=wait_timeout,
        max_unavailable=max_unavailable,
        on_progress=progress.append,
        clock=client.clock,
        sleep=client.clock.sleep,
        lease_refresh=3600,  # the refresh thread is tested on its own
    )
    result = rollout.run(plan_deploy(machines, regions, strategy))
    return result, progress


def test_rolling_updates_one_machine_at_a_time_and_waits_for_each() -> None:
    machines = [make_machine("a1"), make_machine("a2", created_minute=1), make_machine("s1", "sin")]
    client = FakeRolloutClient(machines)
    result, progress = run(client, machines, ["ams", "sin", "iad"], "rolling", max_unavailable=1)
    assert result.ok
    assert client.calls == [
        ("update", "a1"),
        ("wait", "a1"),
        ("update", "a2"),
        ("wait", "a2"),
        ("update", "s1"),
        ("wait", "s1"),
        ("create", "iad"),
        ("wait", "new1"),
    ]
    assert all(m.config.image == NEW_IMAGE for m in client.machines.values())
    assert [p.phase for p in progress].count("started") == 4


def test_rolling_stops_at_the_first_failure_and_leaves_the_rest_on_the_old_version() -> None:
    machines = [make_machine("a1"), make_machine("a2", created_minute=1)]
    client = FakeRolloutClient(machines)
    client.wait_outcome["a1"] = "fail"
    result, progress = run(client, machines, ["ams"], "rolling")
    assert not result.ok
    assert result.failure is not None
    assert "a1 failed to start" in result.failure
    assert "exit code 3" in result.failure
    assert ("update", "a2") not in client.calls
    assert client.machines["a2"].config.image != NEW_IMAGE
    assert progress[-1].phase == "failed"


def ten_machines() -> list[Machine]:
    """ams a0-a3, sin s0-s2, iad i0-i2: the plan's order is a0…a3, s0…s2, i0…i2."""
    return [
        make_machine(f"{region[0]}{i}", region, created_minute=i)
        for region, count in (("ams", 4), ("sin", 3), ("iad", 3))
        for i in range(count)
    ]


def test_rolling_launches_a_whole_batch_before_waiting_for_any_of_it() -> None:
    machines = ten_machines()
    client = FakeRolloutClient(machines)
    result, progress = run(client, machines, ["ams", "sin", "iad"], "rolling", max_unavailable=0.33)
    assert result.ok
    batches = [["a0", "a1", "a2"], ["a3", "s0", "s1"], ["s2", "i0", "i1"], ["i2"]]
    assert client.calls == [
        call
        for batch in batches
        for verb in ("update", "wait")
        for call in ((verb, m) for m in batch)
    ]
    assert [m.id for m in result.machines] == [m for batch in batches for m in batch]
    assert all(m.config.image == NEW_IMAGE for m in client.machines.values())
    # Progress is still one line per step and phase.
    assert [(p.phase, p.step.machine_id) for p in progress[:7]] == [
        ("begin", "a0"),
        ("launched", "a0"),
        ("begin", "a1"),
        ("launched", "a1"),
        ("begin", "a2"),
        ("launched", "a2"),
        ("started", "a0"),
    ]


def test_a_failure_in_the_first_batch_leaves_the_next_batch_untouched() -> None:
    machines = ten_machines()
    client = FakeRolloutClient(machines)
    client.wait_outcome["a1"] = "fail"
    result, progress = run(client, machines, ["ams", "sin", "iad"], "rolling", max_unavailable=3)
    assert not result.ok
    assert "a1 failed to start" in (result.failure or "")
    assert result.failed_step is not None and result.failed_step.machine_id == "a1"
    # The whole first batch was launched; waiting stopped at a1, so a2 is not reported.
    assert client.calls == [
        ("update", "a0"),
        ("update", "a1"),
        ("update", "a2"),
        ("wait", "a0"),
        ("wait", "a1"),
    ]
    assert [m.id for m in result.machines] == ["a0"]
    untouched = ["a3", "s0", "s1", "s2", "i0", "i1", "i2"]
    assert all(client.machines[m].config.image != NEW_IMAGE for m in untouched)
    assert progress[-1].phase == "failed" and progress[-1].step.machine_id == "a1"


def test_a_refused_launch_mid_batch_launches_and_waits_for_nothing_more() -> None:
    machines = [make_machine("a1"), make_machine("s1", "sin"), make_machine("i1", "iad")]
    client = FakeRolloutClient(machines)
    stale = [machines[0], machines[1].model_copy(update={"instance_id": "old"}), machines[2]]
    result, _ = run(client, stale, ["ams", "sin", "iad"], "rolling", max_unavailable=3)
    assert result.failure == "could not update s1 (sin): machine was changed meanwhile"
    assert client.calls == [("update", "a1"), ("update", "s1")]
    assert result.machines == []


def test_rolling_keeps_a_machine_serving_in_a_region_with_two() -> None:
    machines = [make_machine("a1"), make_machine("a2", created_minute=1), make_machine("s1", "sin")]
    client = FakeRolloutClient(machines)
    result, _ = run(client, machines, ["ams", "sin"], "rolling", max_unavailable=5)
    assert result.ok
    assert client.calls == [
        ("update", "a1"),
        ("update", "s1"),
        ("wait", "a1"),
        ("wait", "s1"),
        ("update", "a2"),
        ("wait", "a2"),
    ]


def test_batched_machines_with_checks_each_wait_until_healthy() -> None:
    machines = [make_machine("a1"), make_machine("s1", "sin")]
    client = FakeRolloutClient(machines)
    client.checks_after["a1"] = 2
    client.checks_after["s1"] = 1
    result, progress = run(
        client, machines, ["ams", "sin"], "rolling", checks=True, max_unavailable=2
    )
    assert result.ok
    healthy = [p.step.machine_id for p in progress if p.phase == "healthy"]
    assert healthy == ["a1", "s1"]


def test_an_invalid_max_unavailable_is_refused_up_front() -> None:
    with pytest.raises(ValidationError, match="max_unavailable must be"):
        Rollout(
            FakeRolloutClient([]),
            "web",
            lambda _s: config_for(False),
            wait_timeout=1,
            max_unavailable=0,
        )


def test_rolling_waits_until_checks_pass() -> None:
    machines = [make_machine("a1")]
    client = FakeRolloutClient(machines)
    client.checks_after["a1"] = 3
    result, progress = run(client, machines, ["ams"], "rolling", checks=True)
    assert result.ok
    assert [p.phase for p in progress] == ["begin", "launched", "started", "healthy"]
    assert progress[-1].elapsed >= 0.75  # three polls 250 ms apart


def test_check_critical_until_timeout_fails_the_rollout_naming_the_check() -> None:
    machines = [make_machine("a1"), make_machine("a2", created_minute=1)]
    client = FakeRolloutClient(machines)
    client.checks_after["a1"] = None
    result, _ = run(client, machines, ["ams"], "rolling", checks=True, wait_timeout=5)
    assert not result.ok
    assert "http critical (connection refused)" in (result.failure or "")
    assert ("update", "a2") not in client.calls


def test_start_that_never_comes_fails_after_wait_timeout() -> None:
    machines = [make_machine("a1")]
    clock = FakeClock()
    client = FakeRolloutClient(machines, clock)
    client.wait_outcome["a1"] = "timeout"
    result, _ = run(client, machines, ["ams"], "rolling", wait_timeout=400)
    assert "did not start within 400s" in (result.failure or "")
    assert client.calls.count(("wait", "a1")) == 2  # 300 s then the remaining 100 s


def test_immediate_updates_everything_before_waiting() -> None:
    machines = [make_machine("a1"), make_machine("s1", "sin")]
    client = FakeRolloutClient(machines)
    client.checks_after["a1"] = None  # immediate does not wait for checks
    result, _ = run(client, machines, ["ams", "sin"], "immediate", checks=True)
    assert result.ok
    assert client.calls == [("update", "a1"), ("update", "s1"), ("wait", "a1"), ("wait", "s1")]


def test_a_refused_update_is_reported_not_raised() -> None:
    machine = make_machine("a1")
    client = FakeRolloutClient([machine])
    stale = machine.model_copy(update={"instance_id": "someone-else"})
    result, _ = run(client, [stale], ["ams"], "rolling")
    assert result.failure == "could not update a1 (ams): machine was changed meanwhile"


def test_step_label_names_machine_and_region() -> None:
    assert DeployStep("update", "ams", "abc").label == "abc (ams)"
    assert DeployStep("create", "iad").label == "new machine (iad)"
