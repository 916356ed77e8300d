"""The control plane's side of "replicas follow the app": a ``FollowFleet`` over the store
and the same services the API's routes use.

``PlaneFollowFleet`` is the thin adapter ``ferry.postgres.follow_loop.FollowLoop`` acts
through. A follower is made as ``ferry postgres create`` makes a member: a volume in its
region (``VolumeService.create``, placed on a host with room), then a machine mounting
it (``MachineService.create``, with ``source="ferry"``), which starts at once and joins
the cluster as a replica. Removing one destroys its machine; its volume is destroyed by
a later cycle, once the machine has let go of it. Each action appends a machine event
``{"type": "postgres-follow", "source": "ferry", "status": <add|remove>, "request":
{"reason": …}}``. Every method blocks (store I/O).
"""

from __future__ import annotations

import contextlib

from ferry.autoscale.decisions import is_running
from ferry.errors import FerryError
from ferry.model import DesiredState, Machine
from ferry.model.postgres_follow import FollowPolicy
from ferry.model.volume import CreateVolumeRequest, Volume, VolumeState
from ferry.postgres import plan
from ferry.postgres.follow import FOLLOWER_VOLUME, follower_config
from ferry.server.clock import Clock
from ferry.server.machine_create import make_event
from ferry.server.machines_service import MachineService
from ferry.server.schemas import CreateMachineRequest
from ferry.server.volumes_service import VolumeService
from ferry.store import StateStore

__all__ = ["PlaneFollowFleet"]


class PlaneFollowFleet:
    """Implements ``ferry.postgres.follow_loop.FollowFleet`` for one control plane."""

    def __init__(
        self, store: StateStore, clock: Clock, machines: MachineService, volumes: VolumeService
    ) -> None:
        self._store = store
        self._clock = clock
        self._machines = machines
        self._volumes = volumes

    def policies(self) -> dict[str, FollowPolicy]:
        return self._store.list_follow_policies()

    def running_regions(self, app: str) -> frozenset[str]:
        machines = self._store.list_machines(app_name=app, include_destroyed=False)
        return frozenset(m.region for m in machines if is_running(m))

    def members(self, database: str) -> list[Machine]:
        self._store.get_app(database)  # NotFoundError for a database that is gone
        machines = self._store.list_machines(app_name=database, include_destroyed=False)
        return [
            m
            for m in machines
            if m.config.metadata.get(plan.MEMBER_METADATA)
            and m.desired_state is not DesiredState.DESTROYED
        ]

    def follower_volumes(self, database: str) -> list[Volume]:
        return [
            v
            for v in self._store.list_volumes(app_name=database)
            if v.name == FOLLOWER_VOLUME and v.state is not VolumeState.DESTROYED
        ]

    def _record(self, machine_id: str, kind: str, reason: str) -> None:
        event = make_event(self._clock, "postgres-follow", kind, "ferry", reason=reason)
        self._store.append_event(machine_id, event)

    def add_replica(
        self, database: str, template: Machine, region: str, app: str, reason: str
    ) -> Machine:
        """Make the follower's volume and machine; the volume goes again when the
        machine cannot be made (``FerryError`` re-raised, e.g. no room in ``region``)."""
        size = 1
        if template.config.mounts:
            size = self._store.get_volume(template.config.mounts[0].volume, database).size_gb
        volume = self._volumes.create(
            database, CreateVolumeRequest(name=FOLLOWER_VOLUME, region=region, size_gb=size)
        )
        config = follower_config(template.config, volume.id, app)
        try:
            made = self._machines.create(
                database,
                CreateMachineRequest(region=region, config=config),
                source="ferry",
                reason=reason,
            )
        except FerryError:
            with contextlib.suppress(FerryError):  # else the next cycle drops it
                self._volumes.destroy(database, volume.id)
            raise
        self._record(made.id, "add", reason)
        return made

    def remove_replica(self, database: str, machine_id: str, reason: str) -> None:
        self._record(machine_id, "remove", reason)
        self._machines.destroy(database, machine_id, force=True, source="ferry", reason=reason)

    def drop_volume(self, database: str, volume_id: str, reason: str) -> None:
        self._volumes.destroy(database, volume_id)
