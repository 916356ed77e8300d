"""Volumes of an app (Fly's Volumes resource) and what each host's agent reads and reports.

The control plane decides and records; the agent of the volume's host makes
it real (``ferry.agent.volume_loop``). A new volume goes on a host of its
region with room (``ferry.server.volume_placement``) in state ``creating``
(``restoring`` from a snapshot); the agent reports ``created``. ``extend``
sets a larger ``size_gb`` and state ``extending`` until the agent reports the
filesystem grown. ``destroy`` — only ever on the owner's request, refused
while a machine that is not destroyed claims the volume — sets
``pending_destroy``; the agent removes the image and reports ``destroyed``.
Refusals change nothing. Every method blocks (store I/O).
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any

from ferry.errors import ConflictError, ValidationError
from ferry.model import Host
from ferry.model.volume import (
    CreateVolumeRequest,
    ExtendVolumeResponse,
    SnapshotStatus,
    UpdateVolumeRequest,
    Volume,
    VolumeSnapshot,
    VolumeState,
    volume_name_problem,
)
from ferry.server.clock import Clock
from ferry.server.placement import known_regions
from ferry.server.volume_hosts import LIVE_STATES, VolumeHostSide
from ferry.server.volume_placement import (
    GIB,
    check_size,
    choose_volume_host,
    free_bytes,
    region_of_request,
)
from ferry.server.watch import ChangeNotifier
from ferry.store.base import StateStore

__all__ = ["VolumeService", "new_snapshot_id", "new_volume_id"]


def new_volume_id() -> str:
    """``vol_`` and 16 lower-case hex characters, like Fly's volume ids."""
    return "vol_" + secrets.token_hex(8)


def new_snapshot_id() -> str:
    """``vs_`` and 16 lower-case hex characters, like Fly's snapshot ids."""
    return "vs_" + secrets.token_hex(8)


class VolumeService(VolumeHostSide):
    """Volumes and snapshots. ``lock`` makes each decision on room atomic with its write."""

    def __init__(self, store: StateStore, clock: Clock, transfer_dir: Path) -> None:
        """``transfer_dir``: where forks' copies wait between the two hosts' agents
        (``VolumeHostSide``)."""
        self.store = store
        self.clock = clock
        self.lock = threading.Lock()
        self.transfer_dir = transfer_dir
        #: Notified after every write an agent's view depends on (any host's: a fork
        #: on one host waits for a snapshot of another); the agents long-poll it.
        self.changes = ChangeNotifier()

    # -- the owner's API -----------------------------------------------------

    def create(self, app_name: str, request: CreateVolumeRequest) -> Volume:
        """A new volume on a host of its region with room. Raises ``NotFoundError`` (app,
        snapshot), ``ValidationError`` (name, size, region), ``CapacityError``."""
        self.store.get_app(app_name)
        problem = volume_name_problem(request.name)
        if problem:
            raise ValidationError(f"invalid volume name {request.name!r}: it {problem}")
        with self.lock:
            hosts = self.store.list_hosts()
            volumes = self.store.list_volumes()
            capacities = self.store.volume_capacities()
            if request.source_volume_id is not None:
                return self._fork(app_name, request, hosts, volumes, capacities)
            if request.snapshot_id is not None:
                host_id, floor = self._restore_source(app_name, request.snapshot_id)
                check_size(request.size_gb, at_least=floor)
                host = next(h for h in hosts if h.id == host_id)
                if request.region not in (None, host.region):
                    raise ValidationError(
                        f"snapshot {request.snapshot_id} is kept on its volume's host in region "
                        f"{host.region}; a restore is made there",
                        hint=f"pass --region {host.region} (copies between hosts are not built)",
                    )
                if free_bytes(host.id, capacities, volumes) < request.size_gb * GIB:
                    raise ConflictError(
                        f"the host holding snapshot {request.snapshot_id} has no room for "
                        f"{request.size_gb} GB",
                        hint="free space there, or ask for a smaller size",
                    )
                state = VolumeState.RESTORING
            else:
                check_size(request.size_gb)
                host = _place(request, request.region, hosts, volumes, capacities)
                state = VolumeState.CREATING
            volume = Volume(
                id=new_volume_id(),
                name=request.name,
                app_name=app_name,
                state=state,
                size_gb=request.size_gb,
                region=host.region,
                zone=host.id,
                host_id=host.id,
                created_at=self.clock.now(),
                snapshot_retention=request.snapshot_retention,
                auto_backup_enabled=request.auto_backup_enabled,
                snapshot_id=request.snapshot_id,
            )
            return self._changed(self.store.insert_volume(volume))

    def _fork(
        self,
        app_name: str,
        request: CreateVolumeRequest,
        hosts: list[Host],
        volumes: list[Volume],
        capacities: dict[str, int],
    ) -> Volume:
        """A copy of ``request.source_volume_id`` on a host of the asked region: a
        snapshot of the source (made by its host), restored there; from another host it
        travels through the control plane first (state ``hydrating``)."""
        assert request.source_volume_id is not None
        source = self._usable(app_name, request.source_volume_id, "fork")
        if request.snapshot_id is not None:
            raise ValidationError(
                "give either snapshot_id or source_volume_id, not both",
                hint="a fork copies the volume as it is now",
            )
        check_size(request.size_gb, at_least=source.size_gb)
        host = _place(request, request.region or source.region, hosts, volumes, capacities)
        snapshot = self.store.insert_snapshot(
            VolumeSnapshot(
                id=new_snapshot_id(),
                volume_id=source.id,
                created_at=self.clock.now(),
                retention_days=source.snapshot_retention,
            ),
            source.host_id,
        )
        here = host.id == source.host_id
        fork = Volume(
            id=new_volume_id(),
            name=request.name,
            app_name=app_name,
            state=VolumeState.RESTORING if here else VolumeState.HYDRATING,
            size_gb=request.size_gb,
            region=host.region,
            zone=host.id,
            host_id=host.id,
            created_at=self.clock.now(),
            snapshot_retention=request.snapshot_retention,
            auto_backup_enabled=request.auto_backup_enabled,
            snapshot_id=snapshot.id,
            source_volume_id=source.id,
        )
        return self._changed(self.store.insert_volume(fork))

    def _restore_source(self, app_name: str, snapshot_id: str) -> tuple[str, int]:
        """The host of a snapshot of ``app_name`` and the size of its volume."""
        snapshot, host_id = self.store.get_snapshot(snapshot_id)
        source = self.store.get_volume(snapshot.volume_id)
        if source.app_name != app_name:
            raise ValidationError(
                f"snapshot {snapshot_id} belongs to another app", hint="restore it in its app"
            )
        if snapshot.status is not SnapshotStatus.CREATED:
            raise ConflictError(
                f"snapshot {snapshot_id} is {snapshot.status.value}, not created",
                hint="wait until `ferry volumes snapshots list` shows it created",
            )
        return host_id, source.size_gb

    def list_volumes(self, app_name: str, *, include_destroyed: bool = False) -> list[Volume]:
        self.store.get_app(app_name)
        return self.store.list_volumes(app_name=app_name, include_destroyed=include_destroyed)

    def get(self, app_name: str, volume_id: str) -> Volume:
        return self.store.get_volume(volume_id, app_name)

    def update(self, app_name: str, volume_id: str, request: UpdateVolumeRequest) -> Volume:
        volume = self.store.get_volume(volume_id, app_name)
        changes: dict[str, Any] = {k: v for k, v in request.model_dump().items() if v is not None}
        return self._changed(self.store.update_volume(volume.model_copy(update=changes)))

    def extend(self, app_name: str, volume_id: str, size_gb: int) -> ExtendVolumeResponse:
        """Grow the volume to ``size_gb`` (online: no restart). ``ValidationError`` when
        not larger, ``CapacityError`` (409) when its host lacks the room."""
        with self.lock:
            volume = self._usable(app_name, volume_id, "extend")
            if size_gb <= volume.size_gb:
                raise ValidationError(
                    f"volume {volume_id} is {volume.size_gb} GB; extend only grows it "
                    f"(asked {size_gb} GB)",
                    hint=f"ask for more than {volume.size_gb} GB",
                )
            check_size(size_gb)
            room = free_bytes(
                volume.host_id, self.store.volume_capacities(), self.store.list_volumes()
            )
            if room < (size_gb - volume.size_gb) * GIB:
                raise ConflictError(
                    f"the host of volume {volume_id} has {max(room, 0) / GIB:.1f} GB free, "
                    f"not the {size_gb - volume.size_gb} GB more asked",
                    hint="ask for less, or fork to another host with a snapshot",
                )
            grown = self._changed(
                self.store.update_volume(
                    volume.model_copy(update={"size_gb": size_gb, "state": VolumeState.EXTENDING})
                )
            )
        # A mounted ext4 grows online only where the kernel lets the agent (it needs
        # CAP_SYS_RESOURCE); elsewhere it grows when its machine next starts.
        in_use = grown.attached_machine_id is not None
        needs_restart = in_use and not self.store.volume_online_resize(grown.host_id)
        return ExtendVolumeResponse(volume=grown, needs_restart=needs_restart)

    def destroy(self, app_name: str, volume_id: str) -> Volume:
        """Ask the host to delete the volume. ``ConflictError`` while a machine claims it.
        Idempotent for a volume already being destroyed."""
        volume = self.store.get_volume(volume_id, app_name)
        if volume.state in (VolumeState.PENDING_DESTROY, VolumeState.DESTROYED):
            return volume
        if volume.attached_machine_id is not None:
            raise ConflictError(
                f"volume {volume_id} is in use by machine {volume.attached_machine_id}",
                hint=f"destroy machine {volume.attached_machine_id} first",
            )
        return self._changed(
            self.store.update_volume(
                volume.model_copy(update={"state": VolumeState.PENDING_DESTROY})
            )
        )

    def list_snapshots(self, app_name: str, volume_id: str) -> list[VolumeSnapshot]:
        self.store.get_volume(volume_id, app_name)
        return self.store.list_snapshots(volume_id=volume_id)

    def create_snapshot(self, app_name: str, volume_id: str) -> VolumeSnapshot:
        """A snapshot the volume's agent makes (frozen filesystem while it copies)."""
        volume = self._usable(app_name, volume_id, "snapshot")
        snapshot = VolumeSnapshot(
            id=new_snapshot_id(),
            volume_id=volume.id,
            created_at=self.clock.now(),
            retention_days=volume.snapshot_retention,
        )
        return self._changed(self.store.insert_snapshot(snapshot, volume.host_id))

    def _usable(self, app_name: str, volume_id: str, verb: str) -> Volume:
        volume = self.store.get_volume(volume_id, app_name)
        if volume.state not in (VolumeState.CREATED, VolumeState.EXTENDING):
            raise ConflictError(
                f"cannot {verb} volume {volume_id}: it is {volume.state.value}",
                hint="wait until `ferry volumes show` says created"
                if volume.state in LIVE_STATES
                else "create a new volume",
            )
        return volume


def _place(
    request: CreateVolumeRequest,
    region: str | None,
    hosts: list[Host],
    volumes: list[Volume],
    capacities: dict[str, int],
) -> Host:
    """The host of ``region`` (or the only region) with room for the requested volume."""
    return choose_volume_host(
        request.name,
        region_of_request(region, known_regions(hosts)),
        request.size_gb,
        hosts,
        volumes,
        capacities,
        unique_zone=request.require_unique_zone,
    )
