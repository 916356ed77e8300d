"""Creating a machine: validate, place on the plane's in-memory capacities, one
checked insert.

``MachineCreator.create`` runs under one lock per plane (``lock``, also taken
by resizes): it decides on ``CapacityView`` and inserts with the versions the
view is exact for; the store refuses the insert (``StalePlacement``, nothing
written) if anything was written since, and hands back what was, so the view
catches up and the create decides again. A refusal (422, 400, 409) is only
given from a view caught up during the call. Blocking (store I/O).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from ferry.autoscale.distances import RegionDistances
from ferry.errors import CapacityError, ConflictError, FerryError
from ferry.errors import ValidationError as FerryValidationError
from ferry.model import (
    DesiredState,
    GuestConfig,
    Machine,
    MachineEvent,
    MachineState,
)
from ferry.model.names import MACHINE_NAME_RULE, machine_name_problem
from ferry.model.volume import Volume, VolumeState
from ferry.scheduler import NoPlacement, PlacementRequest
from ferry.server.capacity_view import CapacityView
from ferry.server.clock import Clock
from ferry.server.ids import new_machine_id, new_ulid
from ferry.server.placement import choose_region, fallback_regions, placement_note
from ferry.server.schemas import CreateMachineRequest
from ferry.store import StateStore
from ferry.store.base import StalePlacement

__all__ = ["MachineCreator", "make_event"]

#: A create loses only to a machine write landing between its catch-up and its
#: insert (well under a millisecond): ten losses in a row means a runaway writer.
_PLACE_TRIES = 10


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


class MachineCreator:
    """The create half of ``MachineService``: owns the placement lock and the view."""

    def __init__(self, store: StateStore, clock: Clock, distances: RegionDistances) -> None:
        self.store = store
        self.clock = clock
        self.distances = distances
        self.lock = threading.Lock()
        self.view = CapacityView(store)

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
        with self.lock:
            view = self.view
            if view.versions is None:
                view.rebuild()
            fresh = False  # the view was caught up with the store during this call
            for attempt in range(_PLACE_TRIES):
                try:
                    self._check_app(app_name, request.name)
                    machine, event = self._decide(app_name, request, guest, source, reason)
                    try:
                        stored = self.store.insert_machine(machine, event, expected=view.versions)
                    except BaseException:
                        for mount in machine.config.mounts:  # the claim of a machine not made
                            self.store.release_volume(mount.volume, machine.id)
                        raise
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
        return stored.model_copy(update={"events": [event]})

    def _mounted_volume(self, app_name: str, request: CreateMachineRequest) -> Volume | None:
        """The volume ``config.mounts`` names (checked usable), or ``None``."""
        if not request.config.mounts:
            return None
        volume = self.store.get_volume(request.config.mounts[0].volume, app_name)
        if volume.state in (VolumeState.PENDING_DESTROY, VolumeState.DESTROYED, VolumeState.FAILED):
            raise ConflictError(
                f"volume {volume.id} is {volume.state.value} and cannot be mounted",
                hint="create a new volume",
            )
        if volume.attached_machine_id is not None:
            raise ConflictError(
                f"volume {volume.id} is in use by machine {volume.attached_machine_id}: a "
                "volume is mounted by one machine at a time",
                hint="destroy that machine first, or create another volume",
            )
        return volume

    def _check_app(self, app_name: str, name: str | None) -> None:
        """Refuse an unknown app or one being deleted (as the view knows it), or a bad name."""
        if self.view.app(app_name).status == "destroying":
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
        view = self.view
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
        volume = self._mounted_volume(app_name, request)
        if volume is not None:
            # A machine with a volume runs where its volume lives, and nowhere else.
            if request.region not in (None, "", volume.region):
                raise FerryValidationError(
                    f"volume {volume.id} is in region {volume.region}, not {request.region}",
                    hint=f"create the machine in {volume.region}, or fork the volume "
                    "(snapshot + restore) there",
                )
            placement_request = replace(placement_request, region=volume.region)
            outcome = view.place_on(volume.host_id, placement_request)
        else:
            outcome = view.place(placement_request)
        note: str | None = None
        if isinstance(outcome, NoPlacement) and request.region_fallback and volume is None:
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
        machine_id = new_machine_id()
        if volume is not None:
            self.store.claim_volume(volume.id, app_name, machine_id)
        desired = DesiredState.STOPPED if request.skip_launch else DesiredState.STARTED
        machine = Machine(
            id=machine_id,
            name=name,
            app_name=app_name,
            state=MachineState.CREATED,
            desired_state=desired,
            region=outcome.region,
            instance_id=new_ulid(),
            private_ip=view.allocate_private_ip(
                host, view.app(app_name).organization.sixpn_network
            ),
            host_ip=view.allocate_host_ip(host),
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
