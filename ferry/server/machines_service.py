"""User actions on machines: create, update, start, stop, restart, signal, destroy.

Each action is validate → decide (pure: ``plan_action``, the scheduler,
``placement``) → one store write that carries the revision it read. A lost
race (``RevisionConflict``) is re-read and retried up to ``_TRIES`` times.
Creation is ``MachineCreator``'s (``machine_create.py``).
Every committed write notifies the watchers of the machine's host. All
methods block (store I/O) and are safe to call from several threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from ferry.autoscale.distances import RegionDistances
from ferry.errors import CapacityError, ConflictError, NotFoundError, RevisionConflict
from ferry.errors import ValidationError as FerryValidationError
from ferry.model import (
    Action,
    DesiredState,
    Machine,
    MachineConfig,
    MachineEvent,
    MachineState,
    parse_duration,
    plan_action,
)
from ferry.model.machine import StopOverride
from ferry.scheduler import NoPlacement, PlacementRequest, place_machine
from ferry.server.capacity_view import CapacityView
from ferry.server.clock import Clock
from ferry.server.ids import new_ulid
from ferry.server.machine_create import MachineCreator, make_event
from ferry.server.placement import host_capacities
from ferry.server.schemas import CreateMachineRequest, UpdateMachineRequest
from ferry.server.watch import ChangeNotifier
from ferry.store import StateStore

__all__ = ["MachineService", "make_event"]

_TRIES = 3
_RUNNING = {MachineState.STARTING, MachineState.STARTED, MachineState.RESTARTING}
_SUSPENDED = {MachineState.SUSPENDING, MachineState.SUSPENDED}

#: (changes for ``update_machine``, event) or ``None`` when nothing needs writing.
Decision = tuple[dict[str, Any], MachineEvent] | None


class MachineService:
    """The machine half of the control plane's service layer."""

    def __init__(
        self,
        store: StateStore,
        clock: Clock,
        notifier: ChangeNotifier,
        distances: RegionDistances | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier
        self.distances = distances or RegionDistances()
        self._creator = MachineCreator(store, clock, self.distances)
        # Creates and resizes take room on hosts: one at a time (see MachineCreator).
        self._placement_lock = self._creator.lock

    @property
    def capacity_view(self) -> CapacityView:
        """The in-memory capacities creates place on (read it under no lock only in tests)."""
        return self._creator.view

    # -- reads ---------------------------------------------------------------
    def get(self, app_name: str, machine_id: str, *, with_events: bool = False) -> Machine:
        """The machine of ``app_name``; ``NotFoundError`` names the id and the app."""
        self.store.get_app(app_name)
        try:
            machine = self.store.get_machine(machine_id)
        except NotFoundError:
            machine = None
        if machine is None or machine.app_name != app_name:
            raise NotFoundError(
                f"machine {machine_id!r} not found in app {app_name!r}",
                hint=f"list its machines with `ferry machine list -a {app_name}`",
            )
        if with_events:
            events = self.store.list_events(machine.id, limit=20)
            machine = machine.model_copy(update={"events": events})
        return machine

    def list(
        self, app_name: str, *, include_deleted: bool = False, region: str | None = None
    ) -> list[Machine]:
        """Machines of the app, oldest first; ``NotFoundError`` for an unknown app."""
        self.store.get_app(app_name)
        found = self.store.list_machines(app_name=app_name, include_destroyed=include_deleted)
        return [m for m in found if region is None or m.region == region]

    # -- create --------------------------------------------------------------
    def create(
        self,
        app_name: str,
        request: CreateMachineRequest,
        *,
        source: str = "user",
        reason: str | None = None,
    ) -> Machine:
        """Validate, place, allocate an address and store a new machine
        (``MachineCreator.create``, whose errors it raises)."""
        stored = self._creator.create(app_name, request, source=source, reason=reason)
        self.notifier.notify(stored.host_id)
        return stored

    # -- changes -------------------------------------------------------------
    def _mutate(
        self, app_name: str, machine_id: str, decide: Callable[[Machine], Decision]
    ) -> tuple[Machine, Machine]:
        """Apply ``decide`` with optimistic retries; return (before, after)."""
        for attempt in range(_TRIES):
            before = self.get(app_name, machine_id)
            decision = decide(before)
            if decision is None:
                return before, before
            changes, event = decision
            changes["updated_at"] = self.clock.now()
            try:
                after = self.store.update_machine(
                    before.id, before.revision, event=event, **changes
                )
            except RevisionConflict:
                if attempt == _TRIES - 1:
                    raise
                continue
            self.notifier.notify(after.host_id)
            return before, after
        raise AssertionError("unreachable")  # pragma: no cover

    def change(
        self, app_name: str, machine_id: str, decide: Callable[[Machine], Decision]
    ) -> tuple[Machine, Machine]:
        """A write decided by ``decide`` (changes and event, or ``None``), with the same
        optimistic retries as every action here; returns (before, after)."""
        return self._mutate(app_name, machine_id, decide)

    def update(self, app_name: str, machine_id: str, request: UpdateMachineRequest) -> Machine:
        """Replace the config; the machine gets a new ``instance_id``.

        A machine that should run goes to state ``replacing`` (the agent
        recreates its container with the new config and reports ``started``);
        a stopped one keeps its state and uses the new config at next start.
        Raises ``ValidationError`` for a changed region or name,
        ``ConflictError`` when ``current_version`` is stale or the machine is
        destroyed, ``CapacityError`` when a larger guest no longer fits its host.
        """

        def decide(m: Machine) -> Decision:
            desired = plan_action(m.state, m.desired_state, Action.UPDATE)
            if request.region not in (None, m.region):
                raise FerryValidationError(
                    f"machine {m.id} is in region {m.region}; its region cannot change",
                    hint="create a new machine in the other region",
                )
            if request.name not in (None, m.name):
                raise FerryValidationError(
                    f"machine {m.id} is named {m.name!r}; its name cannot change"
                )
            if request.current_version not in (None, m.instance_id):
                raise ConflictError(
                    f"machine {m.id} is at version {m.instance_id}, not {request.current_version}",
                    hint="read the machine again and retry",
                )
            self._check_resize(m, request.config)
            self._claim_mounts(m, request.config)
            running = m.desired_state is DesiredState.STARTED
            state = MachineState.REPLACING if running else m.state
            event = make_event(self.clock, "update", state.value, "user")
            changes = {
                "config": request.config,
                "desired_state": desired,  # a suspended machine's memory is dropped: stopped
                "instance_id": new_ulid(),
                "state": state,
                "stop_override": None,  # the old instance stops by the config
            }
            return changes, event

        # A larger guest takes room on its host: decided and written under the
        # placement lock, so it cannot race a create for the same room.
        with self._placement_lock:
            return self._mutate(app_name, machine_id, decide)[1]

    def _claim_mounts(self, machine: Machine, config: MachineConfig) -> None:
        """Claim the volumes a new config mounts (each must live on the machine's host)
        and free those it no longer mounts. ``ConflictError`` when another machine holds
        one, ``ValidationError`` for a volume elsewhere."""
        for mount in config.mounts:
            volume = self.store.get_volume(mount.volume, machine.app_name)
            if volume.host_id != machine.host_id:
                raise FerryValidationError(
                    f"volume {volume.id} lives on host {volume.host_id}, machine {machine.id} "
                    f"on {machine.host_id}: a machine mounts only a volume of its host",
                    hint="create a new machine with this mount instead",
                )
            self.store.claim_volume(volume.id, machine.app_name, machine.id)
        kept = {mount.volume for mount in config.mounts}
        for old in machine.config.mounts:  # after the new claims: a refusal keeps the old
            if old.volume not in kept:
                self.store.release_volume(old.volume, machine.id)

    def _check_resize(self, machine: Machine, config: MachineConfig) -> None:
        old, new = machine.config.effective_guest, config.effective_guest
        if new.cpus <= old.cpus and new.memory_mb <= old.memory_mb:
            return
        hosts = [h for h in self.store.list_hosts() if h.id == machine.host_id]
        others = self.store.list_machines(host_id=machine.host_id, include_destroyed=False)
        request = PlacementRequest(
            app=machine.app_name, region=machine.region, cpus=new.cpus, memory_mb=new.memory_mb
        )
        # A resize stays on the machine's host even while that host is silent.
        capacities = [
            replace(c, up=True) for c in host_capacities(hosts, others, ignore_machine=machine.id)
        ]
        outcome = place_machine(request, capacities)
        if isinstance(outcome, NoPlacement):
            raise CapacityError(outcome.reason, hint="choose a smaller size")

    def start(
        self, app_name: str, machine_id: str, *, source: str = "user", reason: str | None = None
    ) -> MachineState:
        """Ask for the machine to run; returns the state it had. Idempotent.

        ``source``/``reason`` mark the event (the autoscaler passes ``"ferry"``).
        """

        def decide(m: Machine) -> Decision:
            desired = plan_action(m.state, m.desired_state, Action.START)
            if m.desired_state is desired and m.state in _RUNNING:
                return None
            changes: dict[str, Any] = {
                "desired_state": desired,
                "pending_signal": None,
                "stop_override": None,  # a stop request's signal is for that stop only
            }
            if m.state not in _RUNNING and m.state not in _SUSPENDED:
                changes["generation"] = m.generation + 1  # a resume is no new run
            return changes, make_event(self.clock, "start", "requested", source, reason=reason)

        return self._mutate(app_name, machine_id, decide)[0].state

    def stop(
        self,
        app_name: str,
        machine_id: str,
        *,
        signal: str | None,
        timeout: str | int | float | None = None,
        source: str = "user",
        reason: str | None = None,
    ) -> None:
        """Ask for the machine to stop. Idempotent. ``ConflictError`` if destroyed.

        ``signal`` (already normalized, e.g. ``"SIGKILL"``) and ``timeout`` (a
        duration; a number is seconds) override the machine's
        ``config.stop_config`` for this stop only: they are stored as
        ``stop_override`` with the desired state, in the same write, so the
        agent sees both together, and a later start clears them. A stop of a
        machine already desired stopped changes nothing, its request included.
        Raises ``ValidationError`` for a timeout that is not a duration.
        """
        override = _stop_override(signal, timeout)

        def decide(m: Machine) -> Decision:
            desired = plan_action(m.state, m.desired_state, Action.STOP)
            if m.desired_state is desired:
                return None
            event = make_event(
                self.clock,
                "stop",
                "requested",
                source,
                signal=signal,
                timeout=timeout,
                reason=reason,
            )
            return {"desired_state": desired, "stop_override": override}, event

        self._mutate(app_name, machine_id, decide)

    def restart(
        self,
        app_name: str,
        machine_id: str,
        *,
        signal: str | None = None,
        timeout: str | int | float | None = None,
    ) -> None:
        """Bump the restart generation; the agent restarts the process once for it.

        ``signal``/``timeout`` (Fly's ``?signal=&timeout=``) stop the old process,
        as a stop request's do; without them the config's ``stop_config`` does.
        Raises ``ValidationError`` for a timeout that is not a duration.
        """
        override = _stop_override(signal, timeout)

        def decide(m: Machine) -> Decision:
            desired = plan_action(m.state, m.desired_state, Action.RESTART)
            changes = {
                "desired_state": desired,
                "generation": m.generation + 1,
                "pending_signal": None,
                "stop_override": override,
            }
            event = make_event(
                self.clock, "restart", "requested", "user", signal=signal, timeout=timeout
            )
            return changes, event

        self._mutate(app_name, machine_id, decide)

    def suspend(
        self, app_name: str, machine_id: str, *, source: str = "user", reason: str | None = None
    ) -> None:
        """Ask for the machine's processes to be frozen with their memory kept.

        The agent reports ``suspending`` then ``suspended``; ``start`` resumes it.
        Idempotent for a machine already asked to suspend. ``ConflictError``
        (nothing written) for a machine that is not started.
        """

        def decide(m: Machine) -> Decision:
            desired = plan_action(m.state, m.desired_state, Action.SUSPEND)
            if m.desired_state is desired:
                return None
            event = make_event(self.clock, "suspend", "requested", source, reason=reason)
            return {"desired_state": desired, "pending_signal": None}, event

        self._mutate(app_name, machine_id, decide)

    def signal(self, app_name: str, machine_id: str, signal: str) -> None:
        """Ask the agent to deliver ``signal`` once (new generation with a pending signal)."""

        def decide(m: Machine) -> Decision:
            desired = plan_action(m.state, m.desired_state, Action.SIGNAL)
            changes = {
                "desired_state": desired,
                "generation": m.generation + 1,
                "pending_signal": signal,
            }
            return changes, make_event(self.clock, "signal", "requested", "user", signal=signal)

        self._mutate(app_name, machine_id, decide)

    def destroy(
        self,
        app_name: str,
        machine_id: str,
        *,
        force: bool = False,
        source: str = "user",
        reason: str | None = None,
    ) -> None:
        """Mark the machine desired ``destroyed``; the agent tears it down and reports.

        ``ConflictError`` for a running machine without ``force``, or one
        already destroyed.
        """

        def decide(m: Machine) -> Decision:
            desired = plan_action(m.state, m.desired_state, Action.DESTROY, force=force)
            event = make_event(
                self.clock, "destroy", "requested", source, force=force or None, reason=reason
            )
            return {"desired_state": desired}, event

        self._mutate(app_name, machine_id, decide)


def _stop_override(signal: str | None, timeout: str | int | float | None) -> StopOverride | None:
    """The override a stop request carries, or ``None`` when it asks for the config's.

    Raises ``ValidationError`` naming a timeout that is not a duration.
    """
    if signal is None and timeout is None:
        return None
    if timeout is not None:
        parse_duration(timeout)
    try:
        return StopOverride.model_validate({"signal": signal, "timeout": timeout})
    except PydanticValidationError as exc:
        raise FerryValidationError(
            f"invalid stop timeout {timeout!r}: {exc.errors()[0]['msg']}",
            hint='write it like "5s" or a number of seconds',
        ) from None
