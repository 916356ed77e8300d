"""[deploy] release_command: the temporary machine's config, and how its exit decides the deploy."""

from __future__ import annotations

from ferry.deploy.release_command import (
    RELEASE_PROCESS_GROUP,
    ReleaseCommand,
    ReleaseOutcome,
    release_machine_config,
)
from ferry.errors import ApiError
from ferry.model import (
    CheckConfig,
    InitConfig,
    Machine,
    MachineConfig,
    MachineState,
    ServiceConfig,
)
from tests.unit.deploy.deploy_fakes import FakeClock, make_machine

BASE = MachineConfig(
    image="reg/web@sha256:" + "2" * 64,
    env={"GREETING": "hi"},
    init=InitConfig(entrypoint=["/bin/tini", "--"], cmd=["serve"]),
    services=[ServiceConfig(internal_port=8080, checks=[CheckConfig(port=8080)])],
    checks={"alive": CheckConfig(port=8080)},
    metadata={"fly_process_group": "app"},
)


def test_the_release_machine_replaces_cmd_keeps_entrypoint_and_serves_nothing() -> None:
    config = release_machine_config(BASE, ["bin/migrate", "--all"])
    assert config.init.cmd == ["bin/migrate", "--all"]
    assert config.init.entrypoint == ["/bin/tini", "--"]
    assert config.env == {"GREETING": "hi", "RELEASE_COMMAND": "1"}
    assert config.services == [] and config.checks == {}
    assert config.restart.policy == "no"
    assert config.metadata["fly_process_group"] == RELEASE_PROCESS_GROUP
    assert config.image == BASE.image


class FakeReleaseClient:
    """The release machine exits after ``runs_for`` seconds with ``exit_code`` (``None``:
    never exits); ``lines`` is its output."""

    def __init__(self, clock: FakeClock, *, exit_code: int | None, runs_for: float = 1.0) -> None:
        self.clock = clock
        self.exit_code = exit_code
        self.runs_for = runs_for
        self.lines = ["migrating", "done"]
        self.machine: Machine | None = None
        self.destroyed: list[str] = []
        self.refuse_create = False
        self._started_at = 0.0

    def create_machine(
        self,
        app: str,
        config: MachineConfig,
        *,
        region: str | None = None,
        name: str | None = None,
        skip_launch: bool = False,
        region_fallback: bool = False,
    ) -> Machine:
        if self.refuse_create:
            raise ApiError("no capacity in ams", status=503)
        self._started_at = self.clock()
        self.machine = make_machine("rel1", region or "ams", config=config)
        return self.machine

    def get_machine(self, app: str, machine_id: str) -> Machine:
        assert self.machine is not None
        if self.exit_code is None or self.clock() - self._started_at < self.runs_for:
            return self.machine
        state = MachineState.STOPPED if self.exit_code == 0 else MachineState.FAILED
        return self.machine.model_copy(update={"state": state, "exit_code": self.exit_code})

    def delete_machine(self, app: str, machine_id: str, *, force: bool = False) -> None:
        self.destroyed.append(machine_id)

    def machine_logs(self, app: str, machine_id: str, *, tail: int = 200) -> list[str]:
        return list(self.lines)


def run(client: FakeReleaseClient, timeout: float = 300) -> ReleaseOutcome:
    runner = ReleaseCommand(
        client, "web", timeout=timeout, clock=client.clock, sleep=client.clock.sleep
    )
    return runner.run(BASE, ["bin/migrate"], "ams")


def test_exit_zero_lets_the_deploy_go_on_and_the_output_is_kept() -> None:
    client = FakeReleaseClient(FakeClock(), exit_code=0)
    outcome = run(client)
    assert outcome.ok and outcome.exit_code == 0
    assert outcome.output == ("migrating", "done")
    assert client.destroyed == ["rel1"]


def test_a_non_zero_exit_aborts_naming_the_command_and_code() -> None:
    client = FakeReleaseClient(FakeClock(), exit_code=3)
    outcome = run(client)
    assert not outcome.ok and outcome.exit_code == 3
    assert outcome.failure == "release_command `bin/migrate` exited with code 3"
    assert client.destroyed == ["rel1"]


def test_a_hang_times_out_destroys_the_machine_and_aborts() -> None:
    clock = FakeClock()
    client = FakeReleaseClient(clock, exit_code=None)
    began = clock()
    outcome = run(client, timeout=10)
    assert not outcome.ok and outcome.failure is not None
    assert (
        "did not finish within 10s" in outcome.failure and "rel1 was destroyed" in outcome.failure
    )
    assert client.destroyed == ["rel1"]
    assert clock() - began < 10 + 5  # the timeout plus the bounded read of its output


def test_a_refused_create_aborts_with_the_reason() -> None:
    client = FakeReleaseClient(FakeClock(), exit_code=0)
    client.refuse_create = True
    outcome = run(client)
    assert outcome.failure == "could not create the release_command machine: no capacity in ams"
    assert client.destroyed == []
