"""The volume part of the storage contract (``ferry.store.sqlite_volumes``).

A volume row holds the API object (``ferry.model.volume.Volume``); its
``attached_machine_id`` is the machine that claimed it. A claim is free again
once that machine is destroyed (or gone), so no destroy path has to remember
to release it: the claim check reads the machine's state in the same
transaction. Snapshots are rows of their own, on the volume's host. Hosts
report the bytes they can give volumes (``set_volume_capacity``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ferry.model.volume import Volume, VolumeSnapshot

__all__ = ["VolumeStore"]


class VolumeStore(Protocol):
    """Volumes and snapshots. Every method blocks and is thread-safe."""

    def insert_volume(self, volume: Volume) -> Volume:
        """Store a new volume (revision 1). ``ConflictError`` if its id exists."""
        ...

    def get_volume(self, volume_id: str, app_name: str | None = None) -> Volume:
        """The volume (of ``app_name`` when given, even destroyed); ``NotFoundError``."""
        ...

    def list_volumes(
        self,
        *,
        app_name: str | None = None,
        host_id: str | None = None,
        include_destroyed: bool = False,
    ) -> list[Volume]:
        """Volumes by creation time, filtered; claims of destroyed machines show as free."""
        ...

    def update_volume(self, volume: Volume) -> Volume:
        """Write ``volume`` if its ``revision`` is still the stored one; returns it with
        the next revision. ``RevisionConflict`` otherwise, ``NotFoundError``;
        ``ConflictError`` when it would become ``pending_destroy`` while a machine that
        is not destroyed claims it (checked in the same transaction as the write)."""
        ...

    def claim_volume(self, volume_id: str, app_name: str, machine_id: str) -> Volume:
        """Mark the volume claimed by ``machine_id``. Idempotent for the same machine.
        ``ConflictError`` when another machine that is not destroyed holds it, or the
        volume is not usable (being destroyed, failed); ``NotFoundError``."""
        ...

    def release_volume(self, volume_id: str, machine_id: str) -> None:
        """Drop ``machine_id``'s claim (no-op if it holds none): a create that failed."""
        ...

    def insert_snapshot(self, snapshot: VolumeSnapshot, host_id: str) -> VolumeSnapshot:
        """Store a new snapshot of a volume on ``host_id``."""
        ...

    def list_snapshots(
        self, *, volume_id: str | None = None, host_id: str | None = None
    ) -> list[VolumeSnapshot]:
        """Snapshots by creation time, filtered."""
        ...

    def get_snapshot(self, snapshot_id: str) -> tuple[VolumeSnapshot, str]:
        """The snapshot and its host; ``NotFoundError``."""
        ...

    def update_snapshot(self, snapshot: VolumeSnapshot) -> VolumeSnapshot:
        """Replace a snapshot's row (its agent reporting). ``NotFoundError``."""
        ...

    def set_volume_capacity(
        self, host_id: str, capacity_bytes: int, now: datetime, *, online_resize: bool = False
    ) -> None:
        """Record the bytes ``host_id`` can give volumes in all (free + its images), and
        whether it grows a mounted volume without a restart."""
        ...

    def volume_online_resize(self, host_id: str) -> bool:
        """Whether ``host_id`` last said it grows mounted volumes online (``False``: unknown)."""
        ...

    def volume_capacities(self) -> dict[str, int]:
        """Host id → the bytes it last reported it can give volumes."""
        ...
