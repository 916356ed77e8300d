"""The agent's pure decision about its host's volumes: from what the control plane wants
and what is on disk, the steps to take, each with a one-line reason.

``plan_volumes`` is a function of snapshots: the host's volumes and snapshots as
the control plane last said, and what the disk holds (``DiskState``). It never
plans to delete an image the control plane has not marked ``pending_destroy``:
an image nobody knows about is kept (and logged by the caller), because
nothing but its owner's request deletes a volume.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ferry.model.volume import SnapshotStatus, Volume, VolumeSnapshot, VolumeState

__all__ = ["DiskState", "VolumeStep", "VolumeStepKind", "plan_volumes"]

GIB = 1024**3


class VolumeStepKind(StrEnum):
    MAKE = "make"  # a new empty filesystem
    RESTORE = "restore"  # a new filesystem copied from a snapshot on this host
    MOUNT = "mount"  # loop-mount the image under the agent's state dir
    GROW = "grow"  # the volume was extended: grow image and filesystem
    REMOVE = "remove"  # the owner destroyed it: unmount, delete the image
    SNAPSHOT = "snapshot"  # copy the image (frozen if mounted)
    MISSING = "missing"  # a volume that should exist has no image here: report it failed
    FETCH = "fetch"  # a fork's copy is at the control plane: fetch it to this host
    EXPORT = "export"  # a fork on another host waits for this host's snapshot: send it


@dataclass(frozen=True)
class VolumeStep:
    kind: VolumeStepKind
    target: str  # the volume id (the snapshot id for SNAPSHOT)
    reason: str
    volume: Volume | None = None


@dataclass(frozen=True)
class DiskState:
    """What the host holds: image sizes by volume id (bytes), mounted volume ids,
    filesystem sizes (bytes) and snapshot ids present."""

    images: Mapping[str, int] = field(default_factory=dict)
    mounted: frozenset[str] = frozenset()
    filesystems: Mapping[str, int] = field(default_factory=dict)
    snapshots: frozenset[str] = frozenset()


_LIVE = (VolumeState.CREATED, VolumeState.EXTENDING)


def plan_volumes(
    volumes: Iterable[Volume],
    snapshots: Iterable[VolumeSnapshot],
    disk: DiskState,
    failed: Mapping[str, str] | None = None,
    *,
    imports: Iterable[str] = (),
    exports: Iterable[str] = (),
) -> list[VolumeStep]:
    """At most one step per volume and one per snapshot, in a stable order.

    ``failed`` (volume id → error) holds volumes whose make or restore failed in
    this agent's life: they are not retried (the control plane shows them failed).
    ``imports``/``exports``: forks' copies the control plane holds for this host,
    or waits for from it. A restore waits until its snapshot is on this host.
    """
    failed = failed or {}
    held = set(imports)
    steps: list[VolumeStep] = []
    by_id = {}
    for v in volumes:
        by_id[v.id] = v
        step = _volume_step(v, disk, failed, held)
        if step is not None:
            steps.append(step)
    for snapshot_id in sorted(set(exports)):
        if snapshot_id in disk.snapshots:
            why = f"snapshot {snapshot_id} goes to a fork on another host"
            steps.append(VolumeStep(VolumeStepKind.EXPORT, snapshot_id, why))
    for s in snapshots:
        if s.status is not SnapshotStatus.CREATING:
            continue
        source = by_id.get(s.volume_id)
        if source is None or s.volume_id not in disk.images:
            continue  # its volume is gone or not made yet: the report says so later
        steps.append(
            VolumeStep(
                VolumeStepKind.SNAPSHOT,
                s.id,
                f"snapshot {s.id} of {s.volume_id} asked",
                volume=source,
            )
        )
    return steps


def _volume_step(
    v: Volume, disk: DiskState, failed: Mapping[str, str], held: set[str]
) -> VolumeStep | None:
    has_image = v.id in disk.images
    if v.state is VolumeState.DESTROYED:
        return None
    if v.state is VolumeState.PENDING_DESTROY:
        if has_image or v.id in disk.mounted:
            return VolumeStep(VolumeStepKind.REMOVE, v.id, f"{v.id} destroyed by its owner", v)
        return None
    if v.id in failed or v.state is VolumeState.FAILED:
        return None
    if not has_image:
        if v.state is VolumeState.CREATING:
            return VolumeStep(VolumeStepKind.MAKE, v.id, f"{v.id} new: {v.size_gb} GB ext4", v)
        if v.state in (VolumeState.RESTORING, VolumeState.HYDRATING) and v.snapshot_id:
            if v.snapshot_id in disk.snapshots:
                why = f"{v.id} new from snapshot {v.snapshot_id}"
                return VolumeStep(VolumeStepKind.RESTORE, v.id, why, v)
            if v.snapshot_id in held:
                why = f"{v.id} forks {v.source_volume_id}: fetching its copy {v.snapshot_id}"
                return VolumeStep(VolumeStepKind.FETCH, v.snapshot_id, why, v)
            return None  # its snapshot is being made (or travelling): wait
        return VolumeStep(
            VolumeStepKind.MISSING, v.id, f"{v.id} is {v.state.value} but has no image here", v
        )
    if v.id not in disk.mounted:
        return VolumeStep(VolumeStepKind.MOUNT, v.id, f"{v.id} not mounted", v)
    wanted = v.size_gb * GIB
    if disk.images[v.id] < wanted:
        why = f"{v.id} extended to {v.size_gb} GB (image {disk.images[v.id] / GIB:.1f} GB)"
        return VolumeStep(VolumeStepKind.GROW, v.id, why, v)
    if disk.filesystems.get(v.id, wanted) < disk.images[v.id] and v.attached_machine_id is None:
        # Grown while in use without online resize: finish once no machine holds it.
        return VolumeStep(VolumeStepKind.GROW, v.id, f"{v.id} filesystem smaller than image", v)
    return None
