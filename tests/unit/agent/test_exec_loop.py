"""The agent's exec loop with a fake driver and a fake control plane: an order runs in its
machine's container and its outcome is posted; a container that is not running here is
answered with an error (never run); output is decoded; nothing of the command's arguments,
stdin or output is logged; a failed poll is retried; the loop stops when told."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest

from ferry.agent.exec_loop import ExecLoop, run_order
from ferry.errors import RuntimeFailure, UnavailableError
from ferry.model.exec import MAX_OUTPUT_BYTES, ExecOrder, ExecOutcome
from ferry.runtime.driver import ContainerState, ContainerStatus
from ferry.runtime.runc_exec import CommandResult


class FakeDriver:
    def __init__(self, states: dict[str, ContainerState], result: CommandResult) -> None:
        self.states = states
        self.result = result
        self.calls: list[tuple[str, list[str], bytes, float, int]] = []
        self.fail = False

    def inspect(self, container_id: str) -> ContainerStatus:
        return ContainerStatus(container_id, self.states.get(container_id, ContainerState.MISSING))

    def exec_command(
        self, container_id: str, argv: Sequence[str], *, stdin: bytes, timeout: float, limit: int
    ) -> CommandResult:
        if self.fail:
            raise RuntimeFailure("could not start runc exec: no such file")
        self.calls.append((container_id, list(argv), stdin, timeout, limit))
        return self.result


class FakeClient:
    """Hands out ``batches`` one poll at a time (an exception is raised), then stops the loop."""

    def __init__(self, batches: list[list[ExecOrder] | Exception], stop: threading.Event) -> None:
        self.batches = batches
        self.stop = stop
        self.answers: list[tuple[str, str, ExecOutcome]] = []
        self.answered = threading.Event()

    def take_exec_requests(self, host_id: str, timeout: float = 20) -> list[ExecOrder]:
        if not self.batches:
            self.stop.set()
            return []
        batch = self.batches.pop(0)
        if isinstance(batch, Exception):
            raise batch
        return batch

    def answer_exec_request(self, host_id: str, request_id: str, outcome: ExecOutcome) -> None:
        self.answers.append((host_id, request_id, outcome))
        self.answered.set()


def order(**fields: object) -> ExecOrder:
    values: dict[str, object] = {
        "id": "01X",
        "machine_id": "m1",
        "instance_id": "i1",
        "argv": ["/bin/printenv", "SECRET_TOKEN"],
        "stdin": "s3cr3t-in",
        "timeout": 7,
    }
    values.update(fields)
    return ExecOrder.model_validate(values)


RESULT = CommandResult(stdout=b"s3cr3t-out\n\xff", stderr=b"", exit_code=0)


def test_an_order_runs_in_its_instances_container_with_its_stdin_and_limits() -> None:
    driver = FakeDriver({"m1-i1": ContainerState.RUNNING}, RESULT)
    outcome = run_order(driver, "ams-1", order())
    assert driver.calls == [
        ("m1-i1", ["/bin/printenv", "SECRET_TOKEN"], b"s3cr3t-in", 7, MAX_OUTPUT_BYTES)
    ]
    assert outcome.stdout == "s3cr3t-out\n\ufffd"  # bytes that are not UTF-8 are replaced
    assert (outcome.exit_code, outcome.error, outcome.timed_out) == (0, None, False)


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        (None, "not on this host"),
        (ContainerState.PAUSED, "paused"),
        (ContainerState.EXITED, "exited"),
    ],
)
def test_a_container_that_is_not_running_here_is_an_error_and_nothing_runs(
    state: ContainerState | None, shown: str
) -> None:
    driver = FakeDriver({"m1-i1": state} if state else {}, RESULT)
    outcome = run_order(driver, "ams-1", order())
    assert driver.calls == []
    assert outcome.error == (
        f"machine m1 is not running on host ams-1 (its container is {shown}): "
        "the command was not run"
    )


def test_a_runtime_failure_is_an_error_outcome() -> None:
    driver = FakeDriver({"m1-i1": ContainerState.RUNNING}, RESULT)
    driver.fail = True
    outcome = run_order(driver, "ams-1", order())
    assert outcome.error is not None and "could not run the command in machine m1" in outcome.error


def test_the_loop_answers_every_order_and_logs_only_the_program_and_exit_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stop = threading.Event()
    client = FakeClient([UnavailableError("control plane down"), [order()]], stop)
    driver = FakeDriver({"m1-i1": ContainerState.RUNNING}, RESULT)
    loop = ExecLoop(client, driver, "ams-1", stop, take_seconds=0)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    assert client.answered.wait(10)
    thread.join(10)
    assert not thread.is_alive()
    ((host, request_id, outcome),) = client.answers
    assert (host, request_id, outcome.exit_code) == ("ams-1", "01X", 0)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "exec poll failed (control plane down?)" in logged
    assert "exec printenv in machine m1: exit 0" in logged
    assert "s3cr3t" not in logged and "SECRET_TOKEN" not in logged
