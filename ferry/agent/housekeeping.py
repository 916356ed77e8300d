"""What the agent clears away in the background: cached images and uid ranges nothing needs.

Both decisions read the agent's last snapshot of desired machines plus the
containers that exist; both do nothing before the first snapshot, when an
empty view would make every stopped machine's image and range look unneeded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from ferry.agent.reconcile import LABEL_MACHINE
from ferry.errors import FerryError
from ferry.model import Machine, MachineState
from ferry.runtime.driver import ContainerStatus
from ferry.runtime.image_gc import GcPolicy, ImageDeletion
from ferry.runtime.images import RegistryImageStore
from ferry.runtime.runc import RuncDriver
from ferry.runtime.userns import IdRangeAllocator, range_owner

__all__ = ["Housekeeper", "images_in_use"]

log = logging.getLogger("ferry.agent")


def images_in_use(machines: Iterable[Machine], containers: Iterable[ContainerStatus]) -> set[str]:
    """The image references (and ``image_ref`` digests) of every machine assigned to this
    host, except destroyed ones with no container left. Pure.

    A container's own image is not recorded anywhere the agent reads (an old instance's
    container runs an image its machine no longer names): ``collect`` keeps the images
    that mounted container overlays use, which covers every container.
    """
    with_container = {_machine_of(c) for c in containers}
    references: set[str] = set()
    for m in machines:
        if m.state is MachineState.DESTROYED and m.id not in with_container:
            continue
        references.add(m.config.image)
        if m.image_ref.digest:
            references.add(m.image_ref.digest)
    return references


def _machine_of(container: ContainerStatus) -> str:
    return container.labels.get(LABEL_MACHINE, container.container_id.split("-")[0])


class Housekeeper:
    """Image and uid-range collection for one host. Blocking; one caller at a time."""

    def __init__(
        self,
        host_id: str,
        driver: RuncDriver,
        images: RegistryImageStore,
        id_ranges: IdRangeAllocator | None,
        policy: GcPolicy,
    ) -> None:
        self.host_id = host_id
        self.driver = driver
        self.images = images
        self.id_ranges = id_ranges
        self.policy = policy
        self._unclaimed: set[str] = set()  # range owners the last pass found unclaimed

    def collect(self, desired: Sequence[Machine] | None) -> None:
        """One pass of both collections; a failure of either is logged, never raised."""
        try:
            self.collect_images(desired)
        except (FerryError, OSError) as exc:
            log.warning("image garbage collection failed: %s", exc)
        try:
            self.collect_id_ranges(desired)
        except (FerryError, OSError) as exc:
            log.warning("uid range collection failed: %s", exc)

    def collect_images(self, desired: Sequence[Machine] | None) -> list[ImageDeletion]:
        """Delete the cached images this host no longer needs; log and return them."""
        if desired is None:
            return []
        deleted = self.images.collect(images_in_use(desired, self.driver.list()), self.policy)
        for deletion in deleted:
            log.info(
                "removed image %s (%s): %.1f MB freed",
                deletion.digest,
                deletion.reason,
                deletion.size_bytes / 1e6,
            )
        if deleted:
            freed = sum(d.size_bytes for d in deleted)
            log.info("image cache: %d images removed, %.1f MB freed", len(deleted), freed / 1e6)
        return deleted

    def collect_id_ranges(self, desired: Sequence[Machine] | None) -> None:
        """Free the uid ranges of this host's machines that have neither a live machine
        in the snapshot nor a container, two passes in a row (a machine destroyed
        while the agent was down)."""
        if desired is None or self.id_ranges is None:
            return
        claimed = {
            range_owner(self.host_id, m.id)
            for m in desired
            if m.state is not MachineState.DESTROYED
        }
        claimed |= {range_owner(self.host_id, _machine_of(c)) for c in self.driver.list()}
        self._unclaimed = self.id_ranges.release_unclaimed(
            range_owner(self.host_id, ""), claimed, self._unclaimed
        )
