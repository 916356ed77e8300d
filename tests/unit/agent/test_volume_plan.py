"""The agent's pure volume plan: one step per volume with its reason; never a delete the
owner did not ask for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ferry.model.volume import SnapshotStatus, Volume, VolumeSnapshot, VolumeState
from ferry.storage.plan import GIB, DiskState, VolumeStepKind, plan_volumes

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def volume(state: VolumeState, size_gb: int = 1, **fields: Any) -> Volume:
    base = {
        "id": "vol_1",
        "name": "data",
        "app_name": "db",
        "region": "ams",
        "zone": "h1",
        "host_id": "h1",
        "created_at": NOW,
    }
    return Volume.model_validate({**base, **fields, "state": state, "size_gb": size_gb})


def kinds(volumes: list[Volume], disk: DiskState, **kw: Any) -> list[tuple[str, str]]:
    return [(s.kind.value, s.target) for s in plan_volumes(volumes, kw.get("snaps", []), disk)]


def test_a_new_volume_is_made_and_a_restored_one_copied() -> None:
    assert kinds([volume(VolumeState.CREATING)], DiskState()) == [("make", "vol_1")]
    restoring = volume(VolumeState.RESTORING, snapshot_id="vs_1")
    assert plan_volumes([restoring], [], DiskState()) == []  # its snapshot is being made
    steps = plan_volumes([restoring], [], DiskState(snapshots=frozenset({"vs_1"})))
    assert [s.kind for s in steps] == [VolumeStepKind.RESTORE]
    assert "snapshot vs_1" in steps[0].reason


def test_a_fork_fetches_its_copy_then_restores_and_the_source_host_sends_it() -> None:
    fork = volume(
        VolumeState.HYDRATING, snapshot_id="vs_9", source_volume_id="vol_src", host_id="h2"
    )
    waiting = plan_volumes([fork], [], DiskState())
    fetching = plan_volumes([fork], [], DiskState(), imports=["vs_9"])
    arrived = plan_volumes([fork], [], DiskState(snapshots=frozenset({"vs_9"})))
    sending = plan_volumes([], [], DiskState(snapshots=frozenset({"vs_9"})), exports=["vs_9"])

    assert waiting == []
    assert [(s.kind, s.target) for s in fetching] == [(VolumeStepKind.FETCH, "vs_9")]
    assert [s.kind for s in arrived] == [VolumeStepKind.RESTORE]
    assert [(s.kind, s.target) for s in sending] == [(VolumeStepKind.EXPORT, "vs_9")]


def test_an_image_that_exists_is_mounted_then_left_alone() -> None:
    made = volume(VolumeState.CREATED)
    on_disk = DiskState(images={"vol_1": GIB})
    mounted = DiskState(
        images={"vol_1": GIB}, mounted=frozenset({"vol_1"}), filesystems={"vol_1": GIB}
    )

    assert kinds([made], on_disk) == [("mount", "vol_1")]
    assert kinds([made], mounted) == []


def test_an_extended_volume_grows_and_a_missing_image_is_reported_not_remade() -> None:
    mounted = DiskState(
        images={"vol_1": GIB}, mounted=frozenset({"vol_1"}), filesystems={"vol_1": GIB}
    )

    assert kinds([volume(VolumeState.EXTENDING, size_gb=2)], mounted) == [("grow", "vol_1")]
    assert kinds([volume(VolumeState.CREATED)], DiskState()) == [("missing", "vol_1")]


def test_only_the_owners_destroy_removes_an_image() -> None:
    on_disk = DiskState(images={"vol_1": GIB, "vol_orphan": GIB}, mounted=frozenset({"vol_1"}))

    steps = kinds([volume(VolumeState.PENDING_DESTROY)], on_disk)

    assert steps == [("remove", "vol_1")]  # the image nobody names is kept
    assert kinds([volume(VolumeState.DESTROYED)], on_disk) == []


def test_a_failed_make_is_not_retried_and_a_snapshot_waits_for_its_image() -> None:
    snap = VolumeSnapshot(id="vs_1", volume_id="vol_1", created_at=NOW)
    creating = volume(VolumeState.CREATING)

    assert plan_volumes([creating], [], DiskState(), {"vol_1": "mkfs failed"}) == []
    assert kinds([creating], DiskState(), snaps=[snap]) == [("make", "vol_1")]
    made = DiskState(images={"vol_1": GIB}, mounted=frozenset({"vol_1"}))
    done = snap.model_copy(update={"status": SnapshotStatus.CREATED})
    assert kinds([volume(VolumeState.CREATED)], made, snaps=[snap]) == [("snapshot", "vs_1")]
    assert kinds([volume(VolumeState.CREATED)], made, snaps=[done]) == []
