"""The agents' side of volumes: what each host keeps, what it reports, and the copies of
forks that travel between hosts through the control plane (a mixin of ``VolumeService``).

A host reads its volumes, snapshots, ``exports`` (snapshots of its own a fork on
another host waits for) and ``imports`` (copies the control plane holds for a
fork on it); its reports move volumes to ``created``, ``failed`` or
``destroyed`` and snapshots to ``created``. A fork's copy is dropped once the
fork reports ready. Every method blocks (store and file I/O).
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any, TypeVar

from ferry.errors import FerryError, NotFoundError, ValidationError
from ferry.model.volume import (
    HostVolumeReport,
    HostVolumes,
    SnapshotStatus,
    Volume,
    VolumeReportEntry,
    VolumeState,
)
from ferry.server.clock import Clock
from ferry.server.watch import ChangeNotifier
from ferry.store.base import StateStore

__all__ = ["LIVE_STATES", "VolumeHostSide", "view_version"]

T = TypeVar("T")

#: States of a volume that exists or is being made.
LIVE_STATES = (
    VolumeState.CREATED,
    VolumeState.EXTENDING,
    VolumeState.CREATING,
    VolumeState.RESTORING,
    VolumeState.HYDRATING,
)


class VolumeHostSide:
    """Host-facing methods; the owner's API is ``VolumeService``."""

    store: StateStore
    clock: Clock
    transfer_dir: Path
    changes: ChangeNotifier

    def _changed(self, value: T) -> T:
        """``value``, after waking the agents' long polls (call after each write they see)."""
        self.changes.notify(None)
        return value

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
        view = HostVolumes(
            volumes=self.store.list_volumes(host_id=host_id),
            snapshots=mine,
            exports=sorted(e for e in exports if e),
            imports=sorted(i for i in imports if i),
        )
        return view.model_copy(update={"version": view_version(view)})

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

    def copy_arrived(self, snapshot_id: str) -> None:
        """A fork's copy is now held (``imports`` of its host changed)."""
        self._changed(snapshot_id)

    def report(self, host_id: str, report: HostVolumeReport) -> None:
        """Apply an agent's report: capacity, each volume's state and figures, each
        snapshot's status. Entries for volumes of other hosts are ignored."""
        self.store.get_host(host_id)
        if report.capacity_bytes is not None:
            self.store.set_volume_capacity(
                host_id, report.capacity_bytes, self.clock.now(), online_resize=report.online_resize
            )
        mine = {v.id: v for v in self.store.list_volumes(host_id=host_id)}
        for entry in report.volumes:
            volume = mine.get(entry.id)
            if volume is not None:
                self._apply_volume_report(volume, entry)
        snapshots = {s.id: s for s in self.store.list_snapshots(host_id=host_id)}
        for reported in report.snapshots:
            snapshot = snapshots.get(reported.id)
            if snapshot is not None:
                self.store.update_snapshot(
                    snapshot.model_copy(
                        update={
                            "status": reported.status,
                            "size": reported.size,
                            "digest": reported.digest,
                        }
                    )
                )
        self._changed(report)  # states and figures moved: forks elsewhere may wait for them

    def _apply_volume_report(self, volume: Volume, entry: VolumeReportEntry) -> None:
        figures = {
            k: getattr(entry, k)
            for k in (
                "block_size",
                "blocks",
                "blocks_free",
                "blocks_avail",
                "bytes_total",
                "bytes_used",
            )
            if getattr(entry, k) is not None
        }
        state = volume.state
        error = entry.error
        if entry.state == "destroyed" and state is VolumeState.PENDING_DESTROY:
            state = VolumeState.DESTROYED
        elif entry.state == "failed" and state in LIVE_STATES:
            state = VolumeState.FAILED
        elif entry.state == "ready" and state in LIVE_STATES:
            grown = entry.size_gb >= volume.size_gb
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


def view_version(view: HostVolumes) -> int:
    """A fingerprint of ``view`` without its version: never 0 (0 asks "answer at once"),
    below 2**53 (exact in any JSON reader), equal exactly when the content is."""
    body = view.model_dump_json(exclude={"version"}).encode()
    digest = int.from_bytes(hashlib.blake2b(body, digest_size=8).digest(), "big")
    return (digest >> 11) | 1
