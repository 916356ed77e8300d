"""User actions on machines: create, update, start, stop, restart, signal, destroy.

Each action is validate → decide (pure: ``plan_action``, the scheduler,
``placement``) → one store write that carries the revision it read. A lost
race (``RevisionConflict``) is re-read and retried up to ``_TRIES`` times.
Every committed write notifies the watchers of the machine's host. All
methods block (store I/O) and are safe to call from several threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ferry.autoscale.distances import RegionDistances
from ferry.errors import (
    CapacityError,
    ConflictError,
    FerryError,
    NotFoundError,
    RevisionConflict,
)
from ferry.errors import ValidationError as FerryValidationError
from ferry.model import (
    Action,
    DesiredState,
    GuestConfig,
    Machine,
    MachineConfig,
    MachineEvent,
    MachineState,
    parse_duration,
    plan_action,
)
from ferry.model.machine import StopOverride
from ferry.model.names import MACHINE_NAME_RULE, machine_name_problem
from ferry.scheduler import NoPlacement, PlacementRequest, place_machine
from ferry.server.capacity_view import CapacityView
from ferry.server.clock import Clock
from ferry.server.ids import new_machine_id, new_ulid
from ferry.server.placement import (
    choose_region,
    fallback_regions,
    host_capacities,
    placement_note,
)
from ferry.server.schemas import CreateMachineRequest, UpdateMachineRequest
from ferry.server.watch import ChangeNotifier
from ferry.store import StateStore
from ferry.store.base import StalePlacement

__all__ = ["MachineService", "make_event"]

_TRIES = 3
#: A create loses only to a machine write landing between its catch-up and its
#: insert (well under a millisecond): ten losses in a row means a runaway writer.
_PLACE_TRIES = 10
_RUNNING = {MachineState.STARTING, MachineState.STARTED, MachineState.RESTARTING}
_SUSPENDED = {MachineState.SUSPENDING, MachineState.SUSPENDED}

#: (changes for ``update_machine``, event) or ``None`` when nothing needs writing.
Decision = tuple[dict[str, Any], MachineEvent] | None


def make_event(clock: Clock, type_: str, status: str, source: str, **request: Any) -> MachineEvent:
    """A new event stamped with the clock, in Fly's shape (timestamp in milliseconds)."""
    return MachineEvent.model_validate(
        {
            "id": new_ulid(),
            "type": type_,
            "status": status,
            "source": source,
            "timestamp": int(clock.now().timestamp() * 1000),
            "request": {k: v for k, v in request.items() if v is not None},
        }
    )


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
        # Placement reads capacity then writes: one creation at a time keeps
        # two requests from taking the same room or address.
        self._placement_lock = threading.Lock()
        # Capacities in memory, proven current by every insert (see capacity_view).
        self._view = CapacityView(store)

    @property
    def capacity_view(self) -> CapacityView:
        """The in-memory capacities creates place on (read it under no lock only in tests)."""
        return self._view

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
        """Validate, place, allocate an address and store a new machine.

        With ``request.region_fallback`` (Ferry-only) a region without room
        sends the machine to the nearest region that has it; the returned
        machine's ``events`` then hold its launch event whose ``request``
        carries ``placement_note`` ("placed in iad: …"). ``source`` and
        ``reason`` mark the launch event (the autoscaler passes ``"ferry"``).
        Raises ``NotFoundError`` (app), ``ConflictError`` (app being deleted,
        duplicate name), ``ValidationError`` (name, region), ``CapacityError``.
        """
        guest = request.config.effective_guest
        with self._placement_lock:
            view = self._view
            if view.versions is None:
                view.rebuild()
            fresh = False  # the view was caught up with the store during this call
            for attempt in range(_PLACE_TRIES):
                try:
                    self._check_app(app_name, request.name)
                    machine, event = self._decide(app_name, request, guest, source, reason)
                    stored = self.store.insert_machine(machine, event, expected=view.versions)
                except StalePlacement as stale:
                    # Someone wrote since the view's versions: the insert brought
                    # back what changed, so catching up needs no read.
                    if attempt == _PLACE_TRIES - 1:
                        view.abandon()
                        raise
                    view.catch_up(stale.versions, stale.changed)
                    fresh = True
                    continue
                except FerryError:
                    view.abandon()
                    # A refusal must not come from a stale view: catch up, and if
                    # anything changed, decide again.
                    before = view.versions
                    if fresh or attempt == _PLACE_TRIES - 1:
                        raise
                    view.sync()
                    fresh = True
                    if view.versions == before:
                        raise
                    continue
                except BaseException:
                    view.abandon()  # the placement was not stored: give its room back
                    raise
                view.record(stored)
                break
            else:  # pragma: no cover - the last attempt returns or raises
                raise AssertionError("unreachable")
        self.notifier.notify(stored.host_id)
        return stored.model_copy(update={"events": [event]})

    def _check_app(self, app_name: str, name: str | None) -> None:
        """Refuse an unknown app or one being deleted (as the view knows it), or a bad name."""
        if self._view.app(app_name).status == "destroying":
            raise ConflictError(
                f"app {app_name!r} is being deleted", hint="wait, then create the app again"
            )
        problem = None if name is None else machine_name_problem(name)
        if problem is not None:
            raise FerryValidationError(
                f"invalid machine name {name!r}: it {problem}", hint=MACHINE_NAME_RULE
            )

    def _decide(
        self,
        app_name: str,
        request: CreateMachineRequest,
        guest: GuestConfig,
        source: str,
        reason: str | None,
    ) -> tuple[Machine, MachineEvent]:
        """The new machine (placed, with its address) and its launch event, from the view."""
        view = self._view
        wanted = choose_region(request.region, view.regions)
        name = request.name or f"{app_name}-{new_machine_id()[:6]}"
        if request.name is not None and any(
            m.name == name
            for m in self.store.list_machines(app_name=app_name, include_destroyed=False)
        ):
            raise ConflictError(
                f"app {app_name!r} already has a machine named {name!r}",
                hint="choose another name",
            )
        placement_request = PlacementRequest(
            app=app_name, region=wanted, cpus=guest.cpus, memory_mb=guest.memory_mb
        )
        outcome = view.place(placement_request)
        note: str | None = None
        if isinstance(outcome, NoPlacement) and request.region_fallback:
            refusal = outcome.reason
            for other in fallback_regions(wanted, view.regions, self.distances):
                found = view.place(replace(placement_request, region=other))
                if not isinstance(found, NoPlacement):
                    outcome = found
                    note = placement_note(other, refusal, self.distances)
                    break
        if isinstance(outcome, NoPlacement):
            hint = "choose a smaller size or another region, or add hosts"
            if request.region_fallback:
                hint = "no region has room either: add hosts or choose a smaller size"
            raise CapacityError(outcome.reason, hint=hint)
        host = view.hosts[outcome.host_id]
        now = self.clock.now()
        desired = DesiredState.STOPPED if request.skip_launch else DesiredState.STARTED
        machine = Machine(
            id=new_machine_id(),
            name=name,
            app_name=app_name,
            state=MachineState.CREATED,
            desired_state=desired,
            region=outcome.region,
            instance_id=new_ulid(),
            private_ip=view.allocate_ip(host),
            config=request.config,
            host_id=host.id,
            created_at=now,
            updated_at=now,
            generation=0 if request.skip_launch else 1,
            cordoned=request.skip_service_registration,
        )
        event = make_event(
            self.clock, "launch", "created", source, placement_note=note, reason=reason
        )
        return machine, event

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
    return StopOverride.model_validate({"signal": signal, "timeout": timeout})
