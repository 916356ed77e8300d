"""The agent's exec loop: take the control plane's exec orders, run each in its machine's
container, post the outcome.

The agent does not listen: it keeps a long poll open on
``GET /v1/hosts/{host}/exec-requests`` (``FerryClient.take_exec_requests``), runs each
order on a small pool (``MAX_PARALLEL`` at once, more wait their turn) through the
driver's ``exec_command`` (``runc exec``: the machine's env and user, in its
namespaces and cgroup, at most ``order.timeout`` seconds, ``MAX_OUTPUT_BYTES`` per
stream) and answers with ``answer_exec_request``. An order for a container that is not
running here is answered with an ``error`` the API turns into a 409.

Logged per order: the program's name, the machine and the exit code. Never its
arguments, stdin or output (they may hold the machine's secrets).
"""

from __future__ import annotations

import logging
import posixpath
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from ferry.errors import FerryError
from ferry.model.exec import MAX_OUTPUT_BYTES, ExecOrder, ExecOutcome
from ferry.runtime.driver import ContainerState, ContainerStatus
from ferry.runtime.runc_exec import CommandResult

__all__ = ["MAX_PARALLEL", "ExecClient", "ExecDriver", "ExecLoop", "run_order"]

log = logging.getLogger("ferry.agent.exec")

#: Commands run at once on one host; further orders queue in the pool.
MAX_PARALLEL = 4
#: Interactive consoles open at once on one host.
MAX_CONSOLES = 16
#: Seconds of one long poll for orders.
TAKE_SECONDS = 20.0


class ExecDriver(Protocol):
    """What the loop needs of the runtime driver (``RuncDriver`` has both)."""

    def inspect(self, container_id: str) -> ContainerStatus: ...

    def exec_command(
        self, container_id: str, argv: Sequence[str], *, stdin: bytes, timeout: float, limit: int
    ) -> CommandResult: ...


class ExecClient(Protocol):
    """What the loop needs of the control plane (``FerryClient`` has both)."""

    def take_exec_requests(self, host_id: str, timeout: float = 20) -> list[ExecOrder]: ...

    def answer_exec_request(self, host_id: str, request_id: str, outcome: ExecOutcome) -> None: ...


def run_order(driver: ExecDriver, host_id: str, order: ExecOrder) -> ExecOutcome:
    """Run one order in its machine's container; never raises (failures are outcomes)."""
    container_id = f"{order.machine_id}-{order.instance_id}"
    status = driver.inspect(container_id)
    if status.state is not ContainerState.RUNNING:
        shown = "not on this host" if status.state is ContainerState.MISSING else status.state
        return ExecOutcome(
            error=f"machine {order.machine_id} is not running on host {host_id} "
            f"(its container is {shown}): the command was not run"
        )
    try:
        result = driver.exec_command(
            container_id,
            order.argv,
            stdin=order.stdin.encode(),
            timeout=order.timeout,
            limit=MAX_OUTPUT_BYTES,
        )
    except FerryError as exc:
        return ExecOutcome(error=f"could not run the command in machine {order.machine_id}: {exc}")
    return ExecOutcome(
        stdout=result.stdout.decode(errors="replace"),
        stderr=result.stderr.decode(errors="replace"),
        exit_code=result.exit_code,
        exit_signal=result.exit_signal,
        timed_out=result.timed_out,
        truncated=result.truncated,
    )


class ExecLoop:
    """Takes and runs one host's exec orders until ``stopping`` is set. ``run`` blocks."""

    def __init__(
        self,
        client: ExecClient,
        driver: ExecDriver,
        host_id: str,
        stopping: threading.Event,
        *,
        take_seconds: float = TAKE_SECONDS,
        console: Callable[[ExecOrder], int | None] | None = None,
    ) -> None:
        """``console``: runs one interactive console order to its end (``ConsoleRunner.
        serve``); without it such orders are dropped (the user's console times out)."""
        self.console = console
        self._consoles = threading.BoundedSemaphore(MAX_CONSOLES)
        self.client = client
        self.driver = driver
        self.host_id = host_id
        self.stopping = stopping
        self.take_seconds = take_seconds
        self.pool = ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="exec")

    def run(self) -> None:
        """Long-poll for orders and hand each to the pool. Never dies: a failed poll (the
        control plane is down) is logged and retried a second later."""
        try:
            while not self.stopping.is_set():
                try:
                    orders = self.client.take_exec_requests(self.host_id, self.take_seconds)
                except FerryError as exc:
                    log.warning("exec poll failed (control plane down?): %s", exc)
                    self.stopping.wait(1.0)
                    continue
                for order in orders:
                    if order.tty:
                        self._start_console(order)
                    else:
                        self.pool.submit(self.serve, order)
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def _start_console(self, order: ExecOrder) -> None:
        """A console on a thread of its own (it lasts as long as the user stays)."""
        if self.console is None or not self._consoles.acquire(blocking=False):
            log.warning("console to machine %s refused: none or too many", order.machine_id)
            return
        threading.Thread(
            target=self._run_console, args=(order,), name="console", daemon=True
        ).start()

    def _run_console(self, order: ExecOrder) -> None:
        assert self.console is not None
        try:
            log.info("console to machine %s opened", order.machine_id)
            code = self.console(order)
            log.info("console to machine %s closed: exit %s", order.machine_id, code)
        except Exception as exc:  # the relay is gone or runc failed: the user sees it end
            log.warning("console to machine %s failed: %s", order.machine_id, exc)
        finally:
            self._consoles.release()

    def serve(self, order: ExecOrder) -> ExecOutcome:
        """Run one order and post its outcome. Never raises."""
        program = posixpath.basename(order.argv[0]) if order.argv else "?"
        try:
            outcome = run_order(self.driver, self.host_id, order)
        except Exception:  # a bug must not kill the pool's thread silently
            log.exception("exec %s in machine %s failed", program, order.machine_id)
            outcome = ExecOutcome(error="the agent failed to run the command; see its log")
        if outcome.error is None:
            log.info("exec %s in machine %s: exit %s", program, order.machine_id, outcome.exit_code)
        else:
            log.info("exec %s in machine %s: not run", program, order.machine_id)
        try:
            self.client.answer_exec_request(self.host_id, order.id, outcome)
        except FerryError as exc:
            log.warning("could not answer exec request %s: %s", order.id, exc)
        return outcome
