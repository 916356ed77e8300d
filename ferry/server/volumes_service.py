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

import contextlib
import secrets
import threading
from pathlib import Path
from typing import Any

from ferry.errors import ConflictError, FerryError, NotFoundError, ValidationError
from ferry.model import Host
from ferry.model.volume import (
    CreateVolumeRequest,
    ExtendVolumeResponse,
    HostVolumes,
    SnapshotStatus,
    UpdateVolumeRequest,
    Volume,
    VolumeSnapshot,
    VolumeState,
    volume_name_problem,
)
from ferry.server.clock import Clock
from ferry.server.placement import known_regions
from ferry.server.volume_placement import (
    GIB,
    check_size,
    choose_volume_host,
    free_bytes,
    region_of_request,
)
from ferry.store.base import StateStore

__all__ = ["VolumeService", "new_snapshot_id", "new_volume_id"]

_LIVE = (
    VolumeState.CREATED,
    VolumeState.EXTENDING,
    VolumeState.CREATING,
    VolumeState.RESTORING,
    VolumeState.HYDRATING,
)


def new_volume_id() -> str:
    """``vol_`` and 16 lower-case hex characters, like Fly's volume ids."""
    return "vol_" + secrets.token_hex(8)


def new_snapshot_id() -> str:
    """``vs_`` and 16 lower-case hex characters, like Fly's snapshot ids."""
    return "vs_" + secrets.token_hex(8)


class VolumeService:
    """Volumes and snapshots. ``lock`` makes each decision on room atomic with its write."""

    def __init__(self, store: StateStore, clock: Clock, transfer_dir: Path) -> None:
        """``transfer_dir``: where forks' copies wait between the two hosts' agents."""
        self.store = store
        self.clock = clock
        self.lock = threading.Lock()
        self.transfer_dir = transfer_dir

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
                region = region_of_request(request.region, known_regions(hosts))
                host = choose_volume_host(
                    request.name,
                    region,
                    request.size_gb,
                    hosts,
                    volumes,
                    capacities,
                    unique_zone=request.require_unique_zone,
                )
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
            return self.store.insert_volume(volume)

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
        region = region_of_request(request.region or source.region, known_regions(hosts))
        host = choose_volume_host(
            request.name,
            region,
            request.size_gb,
            hosts,
            volumes,
            capacities,
            unique_zone=request.require_unique_zone,
        )
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
        return self.store.insert_volume(fork)

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
        return self.store.update_volume(volume.model_copy(update=changes))

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
            grown = self.store.update_volume(
                volume.model_copy(update={"size_gb": size_gb, "state": VolumeState.EXTENDING})
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
        return self.store.update_volume(
            volume.model_copy(update={"state": VolumeState.PENDING_DESTROY})
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
        return self.store.insert_snapshot(snapshot, volume.host_id)

    def _usable(self, app_name: str, volume_id: str, verb: str) -> Volume:
        volume = self.store.get_volume(volume_id, app_name)
        if volume.state not in (VolumeState.CREATED, VolumeState.EXTENDING):
            raise ConflictError(
                f"cannot {verb} volume {volume_id}: it is {volume.state.value}",
                hint="wait until `ferry volumes show` says created"
                if volume.state in _LIVE
                else "create a new volume",
            )
        return volume

    # -- agents ----------------------------------------------------------------

    def for_host(self, host_id: str) -> HostVolumes:
        """The volumes (destroyed ones left out) and snapshots the host's agent keeps, and
        the forks' copies it must send (``exports``) or may fetch (``imports``)."""
        self.store.get_host(host_id)
        mine = self.store.list_snapshots(host_id=host_id)
        made = {s.id for s in mine if s.status is SnapshotStatus.CREATED}
        hydrating = [
            v
            for v in self.store.list_volumes()
            if v.state is VolumeState.HYDRATING and v.snapshot_id is not None
        ]
        exports = {
            v.snapshot_id
            for v in hydrating
            if v.host_id != host_id and v.snapshot_id in made and not self._held(v.snapshot_id)
        }
        imports = {
            v.snapshot_id
            for v in hydrating
            if v.host_id == host_id and v.snapshot_id and self._held(v.snapshot_id)
        }
        return HostVolumes(
            volumes=self.store.list_volumes(host_id=host_id),
            snapshots=mine,
            exports=sorted(e for e in exports if e),
            imports=sorted(i for i in imports if i),
        )

    # -- forks' copies between hosts ---------------------------------------------

    def transfer_path(self, snapshot_id: str) -> Path:
        if not snapshot_id or "/" in snapshot_id or snapshot_id.startswith("."):
            raise ValidationError(f"invalid snapshot id {snapshot_id!r}")
        return self.transfer_dir / f"{snapshot_id}.frames"

    def _held(self, snapshot_id: str) -> bool:
        return self.transfer_path(snapshot_id).is_file()

    def check_export(self, host_id: str, snapshot_id: str) -> Path:
        """Where the copy ``host_id`` sends goes; ``NotFoundError`` unless a fork waits for
        that snapshot of this host."""
        if snapshot_id not in self.for_host(host_id).exports:
            raise NotFoundError(
                f"no fork waits for snapshot {snapshot_id} from host {host_id}",
                hint="send only what GET /v1/hosts/{id}/volumes lists in exports",
            )
        self.transfer_dir.mkdir(parents=True, exist_ok=True)
        return self.transfer_path(snapshot_id)

    def check_import(self, host_id: str, snapshot_id: str) -> Path:
        """The copy ``host_id`` may fetch; ``NotFoundError`` unless a fork there needs it."""
        if snapshot_id not in self.for_host(host_id).imports:
            raise NotFoundError(
                f"host {host_id} has no fork waiting for snapshot {snapshot_id}",
                hint="fetch only what GET /v1/hosts/{id}/volumes lists in imports",
            )
        return self.transfer_path(snapshot_id)

    def report(self, host_id: str, report: dict[str, Any]) -> None:
        """Apply an agent's report: capacity, each volume's state and figures, each
        snapshot's status. Entries for volumes of other hosts are ignored."""
        self.store.get_host(host_id)
        capacity = report.get("capacity_bytes")
        if isinstance(capacity, int):
            online = report.get("online_resize") is True
            self.store.set_volume_capacity(
                host_id, capacity, self.clock.now(), online_resize=online
            )
        mine = {v.id: v for v in self.store.list_volumes(host_id=host_id)}
        for entry in report.get("volumes", []):
            volume = mine.get(str(entry.get("id")))
            if volume is not None:
                self._apply_volume_report(volume, entry)
        snapshots = {s.id: s for s in self.store.list_snapshots(host_id=host_id)}
        for entry in report.get("snapshots", []):
            snapshot = snapshots.get(str(entry.get("id")))
            if snapshot is None:
                continue
            status = SnapshotStatus(entry.get("status", snapshot.status.value))
            self.store.update_snapshot(
                snapshot.model_copy(
                    update={
                        "status": status,
                        "size": int(entry.get("size", 0)),
                        "digest": str(entry.get("digest", "")),
                    }
                )
            )

    def _apply_volume_report(self, volume: Volume, entry: dict[str, Any]) -> None:
        reported = str(entry.get("state", ""))
        figures = {
            k: int(entry[k])
            for k in (
                "block_size",
                "blocks",
                "blocks_free",
                "blocks_avail",
                "bytes_total",
                "bytes_used",
            )
            if isinstance(entry.get(k), int)
        }
        state = volume.state
        error = entry.get("error")
        if reported == "destroyed" and state is VolumeState.PENDING_DESTROY:
            state = VolumeState.DESTROYED
        elif reported == "failed" and state in _LIVE:
            state = VolumeState.FAILED
        elif reported == "ready" and state in _LIVE:
            grown = int(entry.get("size_gb", 0)) >= volume.size_gb
            state = VolumeState.CREATED if grown else state
            error = None
            if state is VolumeState.CREATED and volume.state is VolumeState.HYDRATING:
                assert volume.snapshot_id is not None  # a fork's copy has arrived: drop it
                self.transfer_path(volume.snapshot_id).unlink(missing_ok=True)
        changes: dict[str, Any] = {**figures, "state": state, "error": error}
        if all(getattr(volume, k) == v for k, v in changes.items()):
            return
        # Changed meanwhile (an extend, a destroy): the next report applies.
        with contextlib.suppress(FerryError):
            self.store.update_volume(volume.model_copy(update=changes))
