"""Execute a ``DeployPlan`` through the API and report progress through a callback.

``rolling`` works batch by batch (``plan.rolling_batches``: as many machines
as ``[deploy] max_unavailable`` allows, never every running machine of a
region that has several): it updates (or creates) every step of the batch,
then waits for each new instance in turn until it is ``started`` and its
health checks pass. The first failure stops the rollout: the rest of that
batch is not waited for and later batches are not started, so machines not
yet reached keep the old version. With ``max_unavailable = 1`` that is one
machine at a time.
``immediate`` updates/creates everything first, then waits for every machine
to start (no check waiting).
``canary`` first creates one new machine (``strategies.canary_step``), waits
for it to start and pass its checks, retires it, then runs ``rolling``; a
failing canary stops the deploy before any machine is touched.
``bluegreen`` creates every green cordoned (Fly's ``skip_service_registration``:
the create itself stores it cordoned, so no edge's routing table ever holds it
early), waits for each to start and pass its checks, uncordons the greens,
cordons the running blues (so no new request reaches a draining blue, nor wakes
it), and only then retires the blues; if any green fails, or cannot be
uncordoned, the greens are retired and every blue keeps serving, uncordoned.
A canary is not cordoned: as on Fly, it takes its share of requests.
Retiring a machine stops it (its ``kill_signal``, so it drains) and destroys it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from ferry.client import MAX_WAIT_SECONDS
from ferry.deploy.leases import LEASE_REFRESH_SECONDS, DeployLeases
from ferry.deploy.plan import DeployPlan, DeployStep, check_max_unavailable, rolling_batches
from ferry.deploy.rollout_types import (  # re-exported: the CLI and tests import them here
    Progress,
    RolloutClient,
    RolloutResult,
    expected_check_count,
)
from ferry.deploy.strategies import bluegreen_phases, canary_step
from ferry.errors import ApiError
from ferry.model import Machine, MachineConfig, MachineState

#: How often a machine is polled while waiting for its checks (the server has no check wait).
CHECK_POLL_SECONDS = 0.25

__all__ = ["Progress", "Rollout", "RolloutClient", "RolloutResult", "expected_check_count"]


class Rollout:
    """Runs one plan. Blocking; raises only what the client raises outside the waits
    (``UnavailableError`` when the API is gone); API refusals end up in the result.

    ``max_unavailable`` sizes a rolling rollout's batches (a count >= 1 or a
    fraction of the running machines, as fly.toml's ``[deploy]`` key); the
    constructor raises ``ValidationError`` for an invalid one. ``immediate``
    ignores it."""

    def __init__(
        self,
        client: RolloutClient,
        app: str,
        config_for: Callable[[DeployStep], MachineConfig],
        *,
        wait_timeout: float,
        max_unavailable: float,
        on_progress: Callable[[Progress], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        lease_refresh: float = LEASE_REFRESH_SECONDS,
    ) -> None:
        self._client = client
        self._app = app
        self._config_for = config_for
        self._wait_timeout = wait_timeout
        self._max_unavailable = check_max_unavailable(max_unavailable)
        self._report = on_progress or (lambda _progress: None)
        self._clock = clock
        self._sleep = sleep
        self._lease_refresh = lease_refresh
        self._leases = DeployLeases(client, app, every=lease_refresh)

    def run(self, plan: DeployPlan) -> RolloutResult:
        """Lease every machine the plan changes (as flyctl does), run the strategy, release.

        A machine leased by someone else (another deploy) fails the rollout before
        anything changes."""
        by_id = {step.machine_id: step for step in plan.updates if step.machine_id}
        self._leases = DeployLeases(self._client, self._app, every=self._lease_refresh)
        refused = self._leases.acquire(by_id)
        if refused is not None:
            machine_id, failure = refused
            return self._fail(RolloutResult(), by_id[machine_id], failure, self._clock(), None)
        try:
            return self._run_strategy(plan)
        finally:
            self._leases.release()

    def _run_strategy(self, plan: DeployPlan) -> RolloutResult:
        if plan.strategy == "immediate":
            return self._run_immediate(plan)
        if plan.strategy == "canary":
            return self._run_canary(plan)
        if plan.strategy == "bluegreen":
            return self._run_bluegreen(plan)
        return self._run_rolling(plan)

    def _run_canary(self, plan: DeployPlan) -> RolloutResult:
        step = canary_step(plan)
        if step is None:
            return self._run_rolling(plan)
        result = RolloutResult()
        began = self._clock()
        machine = self._launch(step, began, result)
        if machine is None:
            return result
        failure = self._wait_started(step, machine, began) or self._wait_checks(
            step, machine, began
        )
        retired = self._retire(step, machine, running=True)
        if failure or retired:
            return self._fail(result, step, failure or retired or "", began, machine)
        return self._run_rolling(plan)

    def _run_bluegreen(self, plan: DeployPlan) -> RolloutResult:
        result = RolloutResult()
        phases = bluegreen_phases(plan)
        greens: list[tuple[DeployStep, Machine, float]] = []
        for step in phases.greens:
            began = self._clock()
            machine = self._launch(step, began, result, cordoned=True)
            if machine is None:
                self._retire_all(greens)
                return result
            greens.append((step, machine, began))
        for step, machine, began in greens:
            if step.wait_started:
                failure = self._wait_started(step, machine, began) or self._wait_checks(
                    step, machine, began
                )
                if failure:
                    self._fail(result, step, failure, began, machine)
                    self._retire_all(greens)
                    return result
        # Every green passes its checks: the edges may route to them now. A stopped
        # green is uncordoned too, so an edge can wake it as it could its blue.
        for step, machine, began in greens:
            try:
                self._client.uncordon_machine(self._app, machine.id)
            except ApiError as exc:
                failure = f"could not uncordon {machine.id}: {exc.message}"
                self._fail(result, step, failure, began, machine)
                self._retire_all(greens)
                return result
            self._report(Progress(step, "ready", machine, self._clock() - began))
        blues = self._cordon_blues(phases.blues)
        # No new request reaches a cordoned blue: each is drained by its stop signal.
        for step, blue in blues:
            failure = self._retire(step, blue, running=step.wait_started)
            if failure:
                return self._fail(result, step, failure, self._clock(), blue)
        result.machines = [self._latest(machine) for _, machine, _ in greens]
        return result

    def _cordon_blues(self, steps: tuple[DeployStep, ...]) -> list[tuple[DeployStep, Machine]]:
        """Cordon every running blue; the blues still there. A cordon that fails is told
        (``note``) and not fatal, as in flyctl: the blue's stop drains it anyway."""
        blues: list[tuple[DeployStep, Machine]] = []
        for step in steps:
            assert step.machine_id is not None
            try:
                blue = self._client.get_machine(self._app, step.machine_id)
            except ApiError:
                continue  # already gone: nothing left to retire
            blues.append((step, blue))
            if not step.wait_started:
                continue  # a stopped blue cannot be cordoned (409); it is destroyed as is
            try:
                self._client.cordon_machine(self._app, blue.id, nonce=self._leases.nonce(blue.id))
            except ApiError as exc:
                detail = f"could not cordon {blue.id}: {exc.message}"
                self._report(Progress(step, "note", blue, detail=detail))
                continue
            self._report(Progress(step, "cordoned", blue))
        return blues

    def _retire_all(self, launched: list[tuple[DeployStep, Machine, float]]) -> None:
        """Retire machines this rollout created; best effort, the failure is already told."""
        for step, machine, _ in launched:
            self._retire(step, machine, running=step.wait_started)

    def _retire(self, step: DeployStep, machine: Machine, *, running: bool) -> str | None:
        """Stop ``machine`` (so it drains on its kill signal), wait, destroy it; a failure
        sentence or ``None``. Bounded by ``wait_timeout``."""
        began = self._clock()
        if running:
            try:
                self._client.stop_machine(
                    self._app, machine.id, nonce=self._leases.nonce(machine.id)
                )
                self._client.wait_machine(
                    self._app,
                    machine.id,
                    state="stopped",
                    timeout=min(self._wait_timeout, MAX_WAIT_SECONDS),
                )
            except ApiError:
                pass  # a machine that cannot stop cleanly (failed, gone) is destroyed anyway
        try:
            nonce = self._leases.nonce(machine.id)
            self._client.delete_machine(self._app, machine.id, force=True, nonce=nonce)
        except ApiError as exc:
            if exc.status != 404:
                return f"could not destroy {machine.id}: {exc.message}"
        self._report(Progress(step, "destroyed", machine, self._clock() - began))
        return None

    def _run_rolling(self, plan: DeployPlan) -> RolloutResult:
        result = RolloutResult()
        for batch in rolling_batches(plan.steps, self._max_unavailable):
            launched: list[tuple[DeployStep, Machine, float]] = []
            for step in batch:
                began = self._clock()
                machine = self._launch(step, began, result)
                if machine is None:
                    return result
                launched.append((step, machine, began))
            # The batch's machines restart in parallel on their hosts, so waiting for
            # them one after the other costs no more than the slowest of them.
            for step, machine, began in launched:
                if step.wait_started:
                    failure = self._wait_started(step, machine, began) or self._wait_checks(
                        step, machine, began
                    )
                    if failure:
                        return self._fail(result, step, failure, began, machine)
                result.machines.append(self._latest(machine))
        return result

    def _run_immediate(self, plan: DeployPlan) -> RolloutResult:
        result = RolloutResult()
        began = self._clock()
        launched: list[tuple[DeployStep, Machine]] = []
        for step in plan.steps:
            machine = self._launch(step, began, result)
            if machine is None:
                return result
            launched.append((step, machine))
        for step, machine in launched:
            if step.wait_started:
                failure = self._wait_started(step, machine, began)
                if failure:
                    return self._fail(result, step, failure, began, machine)
            result.machines.append(self._latest(machine))
        return result

    def _launch(
        self, step: DeployStep, began: float, result: RolloutResult, *, cordoned: bool = False
    ) -> Machine | None:
        """Send the update/create (a create is ``cordoned`` when asked); on refusal record
        the failure and return ``None``."""
        self._report(Progress(step, "begin"))
        config = self._config_for(step)
        try:
            if step.kind == "update" and step.machine_id is not None:
                machine = self._client.update_machine(
                    self._app,
                    step.machine_id,
                    config,
                    current_version=step.instance_id,
                    nonce=self._leases.nonce(step.machine_id),
                )
            else:
                # A full region falls back to the nearest with room (Ferry-only); the
                # machine's placement note says so.
                machine = self._client.create_machine(
                    self._app,
                    config,
                    region=step.region,
                    skip_launch=not step.wait_started,
                    skip_service_registration=cordoned,
                    region_fallback=True,
                )
        except ApiError as exc:
            verb = "update" if step.kind == "update" else "create"
            self._fail(result, step, f"could not {verb} {step.label}: {exc.message}", began, None)
            return None
        self._report(Progress(step, "launched", machine, self._clock() - began))
        return machine

    def _wait_started(self, step: DeployStep, machine: Machine, began: float) -> str | None:
        """Long-poll until the new instance is started; a failure sentence or ``None``."""
        deadline = began + self._wait_timeout
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return f"{machine.id} did not start within {self._wait_timeout:g}s"
            try:
                self._client.wait_machine(
                    self._app,
                    machine.id,
                    state="started",
                    timeout=min(remaining, MAX_WAIT_SECONDS),
                    instance_id=machine.instance_id,
                )
            except ApiError as exc:
                if exc.status == 408:
                    continue
                return f"{machine.id} failed to start: {exc.message}"
            self._report(Progress(step, "started", machine, self._clock() - began))
            return None

    def _wait_checks(self, step: DeployStep, machine: Machine, began: float) -> str | None:
        """Poll until every check of the new instance passes; a failure sentence or ``None``."""
        expected = expected_check_count(machine.config)
        if expected == 0:
            return None
        deadline = began + self._wait_timeout
        since: datetime = machine.updated_at
        latest = machine
        while True:
            try:
                latest = self._client.get_machine(self._app, machine.id)
            except ApiError as exc:
                return f"{machine.id} vanished while its checks were awaited: {exc.message}"
            if latest.instance_id != machine.instance_id:
                return f"{machine.id} was changed by someone else during the deploy"
            if latest.state is MachineState.FAILED:
                code = f" (exit code {latest.exit_code})" if latest.exit_code is not None else ""
                return f"{machine.id} failed after starting{code}"
            fresh = [c for c in latest.checks if c.updated_at is None or c.updated_at >= since]
            if len(fresh) >= expected and all(c.status == "passing" for c in fresh):
                self._report(Progress(step, "healthy", latest, self._clock() - began))
                return None
            if self._clock() >= deadline:
                failing = [c for c in fresh if c.status != "passing"]
                if not failing:
                    return f"{machine.id} reported no health checks within {self._wait_timeout:g}s"
                details = "; ".join(
                    f"{c.name} {c.status}" + (f" ({c.output.strip()[:120]})" if c.output else "")
                    for c in failing
                )
                return f"{machine.id} checks not passing after {self._wait_timeout:g}s: {details}"
            self._sleep(CHECK_POLL_SECONDS)

    def _latest(self, machine: Machine) -> Machine:
        try:
            return self._client.get_machine(self._app, machine.id)
        except ApiError:
            return machine

    def _fail(
        self,
        result: RolloutResult,
        step: DeployStep,
        failure: str,
        began: float,
        machine: Machine | None,
    ) -> RolloutResult:
        result.failure = failure
        result.failed_step = step
        self._report(Progress(step, "failed", machine, self._clock() - began, failure))
        return result
