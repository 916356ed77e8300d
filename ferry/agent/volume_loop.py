"""The agent's volume keeper: makes this host's volumes match what the control plane says.

Each pass reads the host's volumes and snapshots from the control plane, asks
the pure ``plan_volumes`` for steps, logs each step's reason, takes them one at
a time under one lock, and reports every volume's state and figures, each
snapshot's status and the host's capacity when ``report_due`` says so (a state
changed, or figures that moved are ``FIGURES_SECONDS`` old). Between passes it
long-polls the control plane, which answers when the host's view changes (or
after ``WATCH_SECONDS``); a pass that took steps is followed by another at once,
until there is nothing left to do. So an idle host costs the control plane one
request every ``WATCH_SECONDS`` and no write. Level-triggered and idempotent:
after an agent restart the images and their mounts (in the host's mount
namespace) are found as they were; after a reboot they are mounted again.

``source_for`` is the runner's way in: the host directory of a volume, once it
is mounted and any growth that waited for its machine to stop is done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ferry.errors import FerryError, RuntimeFailure
from ferry.model.volume import HostVolumes, Volume, VolumeState
from ferry.storage.loop_volumes import GIB, LoopVolumes, can_resize_online
from ferry.storage.plan import DiskState, VolumeStep, VolumeStepKind, plan_volumes
from ferry.storage.transfer import read_frames, write_frames

__all__ = ["FIGURES_SECONDS", "WATCH_SECONDS", "VolumeApi", "VolumeKeeper", "report_due"]

log = logging.getLogger("ferry.agent.volumes")

#: How long one long poll of the host's view may wait on the control plane.
WATCH_SECONDS = 10.0
#: Pause after a failed pass (the control plane away, a disk error) before the next.
RETRY_SECONDS = 1.0
#: Figures (used bytes, the host's capacity) are reported at most this often.
FIGURES_SECONDS = 10.0
#: Even an unchanged report is sent again after this long.
REFRESH_SECONDS = 300.0
_FIGURES = frozenset(
    {"block_size", "blocks", "blocks_free", "blocks_avail", "bytes_total", "bytes_used"}
)
#: How long a machine's start waits for its volume to be made and mounted.
SOURCE_WAIT_SECONDS = 60.0


class VolumeApi(Protocol):
    """The calls of ``ferry.client`` the keeper makes."""

    def host_volumes(self, host_id: str, since: int = 0, timeout: float = 0) -> HostVolumes: ...

    def report_volumes(self, host_id: str, report: dict[str, Any]) -> None: ...

    def send_snapshot(self, host_id: str, snapshot_id: str, frames: Iterable[bytes]) -> None: ...

    def fetch_snapshot(self, host_id: str, snapshot_id: str) -> Iterator[bytes]: ...


class VolumeKeeper:
    """One host's volumes. ``run`` loops until ``stopping`` is set; methods block."""

    def __init__(self, api: VolumeApi, host_id: str, root: Path) -> None:
        self.api = api
        self.host_id = host_id
        self.disk = LoopVolumes(root)
        self.lock = threading.Lock()  # one disk operation at a time (mkfs, resize, copy)
        self.failed: dict[str, str] = {}  # volume id -> why its make/restore failed
        self._known: dict[str, Volume] = {}
        self._sent: dict[str, Any] | None = None  # the last report the control plane took
        self._sent_at = 0.0

    def run(self, stopping: threading.Event) -> None:
        """Pass after pass until ``stopping``; a failed pass is logged, never fatal."""
        since = 0
        while not stopping.is_set():
            try:
                view, steps = self._pass(since, WATCH_SECONDS)
                # Work done may have made more (a fetched copy to restore): look again
                # at once; else wait for the view to change.
                since = 0 if steps else view.version
                continue
            except FerryError as exc:
                log.warning("volume pass failed: %s", exc)
            except Exception:
                log.exception("volume pass failed")
            since = 0
            stopping.wait(RETRY_SECONDS)

    def pass_once(self) -> list[VolumeStep]:
        """Read at once, plan, act, report (always). Returns the steps taken."""
        return self._pass(0, 0, force_report=True)[1]

    def _pass(
        self, since: int, timeout: float, *, force_report: bool = False
    ) -> tuple[HostVolumes, list[VolumeStep]]:
        wanted = self.api.host_volumes(self.host_id, since, timeout)
        self._known = {v.id: v for v in wanted.volumes}
        with self.lock:
            steps = plan_volumes(
                wanted.volumes,
                wanted.snapshots,
                self._disk_state(),
                self.failed,
                imports=wanted.imports,
                exports=wanted.exports,
            )
            snapshot_sizes: dict[str, int] = {}
            snapshot_errors: dict[str, str] = {}
            for step in steps:
                log.info("volume %s: %s", step.kind.value, step.reason)
                try:
                    size = self._act(step)
                except (FerryError, OSError) as exc:
                    log.warning("volume %s of %s failed: %s", step.kind.value, step.target, exc)
                    if step.kind is VolumeStepKind.SNAPSHOT:
                        snapshot_errors[step.target] = str(exc)
                    elif step.kind in (VolumeStepKind.MAKE, VolumeStepKind.RESTORE):
                        self.failed[step.target] = str(exc)
                    continue
                if step.kind is VolumeStepKind.SNAPSHOT:
                    snapshot_sizes[step.target] = size
            report = self._report(wanted, snapshot_sizes, snapshot_errors)
        now = time.monotonic()
        if force_report or report_due(self._sent, report, now - self._sent_at):
            self.api.report_volumes(self.host_id, report)
            self._sent, self._sent_at = report, now
        return wanted, steps

    def source_for(self, volume_id: str, timeout: float = SOURCE_WAIT_SECONDS) -> Path:
        """The host directory of ``volume_id`` for a machine about to start: waits
        (bounded) until the keeper has made and mounted it, then finishes any growth
        that waited for the volume to be free. Raises ``RuntimeFailure``."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if volume_id in self.failed:
                    raise RuntimeFailure(
                        f"volume {volume_id} could not be made: {self.failed[volume_id]}"
                    )
                if self.disk.is_mounted(volume_id):
                    self.disk.settle(volume_id)  # nothing holds it now: grow if it waited
                    return self.disk.mount(volume_id)
            if time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"volume {volume_id} is not ready on this host after {timeout:.0f} s",
                    hint="see `ferry volumes show`: it may still be creating, or be failed",
                )
            time.sleep(0.05)

    # -- pieces ------------------------------------------------------------------

    def _disk_state(self) -> DiskState:
        ids = self.disk.volume_ids()
        return DiskState(
            images={i: self.disk.size_bytes(i) for i in ids},
            mounted=frozenset(i for i in ids if self.disk.is_mounted(i)),
            filesystems={i: self.disk.filesystem_bytes(i) for i in ids},
            snapshots=frozenset(self.disk.snapshot_ids()),
        )

    def _act(self, step: VolumeStep) -> int:
        v = step.volume
        kind = step.kind
        if kind is VolumeStepKind.MAKE and v is not None:
            self.disk.make(v.id, v.size_gb)
            self.disk.mount(v.id)
        elif kind is VolumeStepKind.RESTORE and v is not None and v.snapshot_id:
            self.disk.restore(v.id, v.snapshot_id, v.size_gb)
            self.disk.mount(v.id)
        elif kind is VolumeStepKind.MOUNT:
            self.disk.mount(step.target)
        elif kind is VolumeStepKind.GROW and v is not None:
            if not self.disk.grow(v.id, v.size_gb):
                log.info("volume %s grows when its machine next starts", v.id)
        elif kind is VolumeStepKind.REMOVE:
            self.disk.remove(step.target)
        elif kind is VolumeStepKind.SNAPSHOT and v is not None:
            return self.disk.take_snapshot(v.id, step.target)
        elif kind is VolumeStepKind.FETCH:
            target = self.disk.snapshot(step.target)
            partial = target.with_suffix(".partial")
            write_frames(self.api.fetch_snapshot(self.host_id, step.target), partial)
            partial.rename(target)  # the next pass (at once: steps were taken) restores it
        elif kind is VolumeStepKind.EXPORT:
            self.api.send_snapshot(
                self.host_id, step.target, read_frames(self.disk.snapshot(step.target))
            )
        elif kind is VolumeStepKind.MISSING:
            log.error("volume %s has no image on this host: reported failed", step.target)
        return 0

    def _report(
        self,
        wanted: HostVolumes,
        snapshot_sizes: dict[str, int],
        snapshot_errors: dict[str, str],
    ) -> dict[str, Any]:
        volumes = []
        for v in wanted.volumes:
            entry: dict[str, Any] = {"id": v.id}
            if v.state is VolumeState.PENDING_DESTROY:
                if not self.disk.has_image(v.id):
                    entry["state"] = "destroyed"
            elif v.id in self.failed:
                entry.update(state="failed", error=self.failed[v.id])
            elif not self.disk.has_image(v.id) and v.state not in (
                VolumeState.CREATING,
                VolumeState.RESTORING,
                VolumeState.HYDRATING,
            ):
                entry.update(state="failed", error="its image is missing on the host")
            elif self.disk.is_mounted(v.id):
                figures = self.disk.figures(v.id)
                entry.update(state="ready", size_gb=self.disk.filesystem_bytes(v.id) // GIB)
                if figures is not None:
                    entry.update(vars(figures))
            volumes.append(entry)
        snapshots = [
            {"id": sid, "status": "created", "size": size} for sid, size in snapshot_sizes.items()
        ] + [{"id": sid, "status": "failed"} for sid in snapshot_errors]
        return {
            "capacity_bytes": self.disk.capacity_bytes(),
            "online_resize": can_resize_online(),
            "volumes": volumes,
            "snapshots": snapshots,
        }


def report_due(last: dict[str, Any] | None, report: dict[str, Any], age: float) -> bool:
    """Whether ``report`` must be sent, ``last`` having been sent ``age`` seconds ago.

    Pure. Yes for the first report, when a state, an error, a size or a snapshot
    changed (the control plane and its users wait for those), when only figures
    changed but the last report is ``FIGURES_SECONDS`` old, and every
    ``REFRESH_SECONDS`` in any case.
    """
    if last is None or age >= REFRESH_SECONDS:
        return True
    if report == last:
        return False
    return _without_figures(report) != _without_figures(last) or age >= FIGURES_SECONDS


def _without_figures(report: dict[str, Any]) -> dict[str, Any]:
    volumes = [{k: v for k, v in e.items() if k not in _FIGURES} for e in report["volumes"]]
    return {**report, "capacity_bytes": None, "volumes": volumes}
