"""``Scheduler``: an incremental placement index for placing many machines in a row.

Layout, per region:

* ``order`` — the up hosts as ``(-free_memory_mb, host_id)``, kept sorted, so
  the first host that fits in any subset of it is that subset's best by
  (most free memory, lowest id), and a scan can stop at the first host with
  too little memory;
* per app, the hosts that hold at least one of its machines, bucketed by that
  count (``_AppSpread.levels``); hosts with none are the implicit level 0.

A placement looks at levels from the lowest up. For one level it either walks
the bucket (when the bucket is small) or walks ``order`` and keeps only the
hosts of that level (when the bucket is large, such a host turns up early).
Either walk costs about ``min(b, n / b)`` hosts for a bucket of ``b`` out of
``n``, whether a region has ten apps or a thousand. Hosts that have memory but
no free cpus are walked over, so a region full of cpu-bound hosts is slower.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable

from ferry.errors import ConflictError, NotFoundError, ValidationError
from ferry.scheduler import _rule
from ferry.scheduler._types import HostCapacity, NoPlacement, Placement, PlacementRequest

__all__ = ["Scheduler"]


class _HostRecord:
    """The mutable twin of one ``HostCapacity``."""

    __slots__ = (
        "apps",
        "cpus",
        "free_cpus",
        "free_memory_mb",
        "host_id",
        "memory_mb",
        "region",
        "up",
    )

    def __init__(self, host: HostCapacity) -> None:
        self.host_id = host.host_id
        self.region = host.region
        self.cpus = host.cpus
        self.memory_mb = host.memory_mb
        self.free_cpus = host.cpus - host.used_cpus
        self.free_memory_mb = host.memory_mb - host.used_memory_mb
        self.apps = {app: count for app, count in host.app_machines.items() if count > 0}
        self.up = host.up

    def to_capacity(self) -> HostCapacity:
        return HostCapacity(
            host_id=self.host_id,
            region=self.region,
            cpus=self.cpus,
            memory_mb=self.memory_mb,
            used_cpus=self.cpus - self.free_cpus,
            used_memory_mb=self.memory_mb - self.free_memory_mb,
            app_machines=dict(self.apps),
            up=self.up,
        )


class _AppSpread:
    """Where one app's machines sit in one region."""

    __slots__ = ("counts", "levels", "total")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}  # up host -> machines of the app (only >= 1)
        self.levels: dict[int, set[str]] = {}  # count -> up hosts with that count
        self.total = 0  # machines of the app in the region, down hosts included

    def move(self, host_id: str, old: int, new: int) -> None:
        """Move an up host from count ``old`` to count ``new``."""
        if old:
            bucket = self.levels[old]
            bucket.discard(host_id)
            if not bucket:
                del self.levels[old]
        if new:
            self.counts[host_id] = new
            self.levels.setdefault(new, set()).add(host_id)
        else:
            del self.counts[host_id]


class _RegionIndex:
    __slots__ = ("down", "order", "region", "spreads", "up_hosts")

    def __init__(self, region: str) -> None:
        self.region = region
        self.up_hosts: dict[str, _HostRecord] = {}
        self.order: list[tuple[int, str]] = []
        self.spreads: dict[str, _AppSpread] = {}
        self.down = 0

    def add(self, record: _HostRecord) -> None:
        for app, count in record.apps.items():
            spread = self.spreads.get(app)
            if spread is None:
                spread = self.spreads[app] = _AppSpread()
            spread.total += count
            if record.up:
                spread.move(record.host_id, 0, count)
        if record.up:
            self.up_hosts[record.host_id] = record
            insort(self.order, (-record.free_memory_mb, record.host_id))
        else:
            self.down += 1

    def best(self, app: str, cpus: int, memory_mb: int) -> _HostRecord | None:
        """The winning up host for the request, or None when no up host fits."""
        spread = self.spreads.get(app)
        if spread is None:
            return self._first_fit_in_order(None, 0, cpus, memory_mb)
        if len(spread.counts) < len(self.order):
            found = self._first_fit_in_order(spread.counts, 0, cpus, memory_mb)
            if found is not None:
                return found
        n = len(self.order)
        for level in sorted(spread.levels):
            bucket = spread.levels[level]
            if len(bucket) * len(bucket) <= n:
                found = self._best_in_bucket(bucket, cpus, memory_mb)
            else:
                found = self._first_fit_in_order(spread.counts, level, cpus, memory_mb)
            if found is not None:
                return found
        return None

    def _first_fit_in_order(
        self, counts: dict[str, int] | None, level: int, cpus: int, memory_mb: int
    ) -> _HostRecord | None:
        hosts = self.up_hosts
        least = -memory_mb
        for negative_free, host_id in self.order:
            if negative_free > least:
                return None  # every host after this one has even less memory
            if counts is not None and counts.get(host_id, 0) != level:
                continue
            record = hosts[host_id]
            if record.free_cpus >= cpus:
                return record
        return None

    def _best_in_bucket(self, bucket: set[str], cpus: int, memory_mb: int) -> _HostRecord | None:
        hosts = self.up_hosts
        best: _HostRecord | None = None
        best_key: tuple[int, str] | None = None
        for host_id in bucket:
            record = hosts[host_id]
            if record.free_memory_mb < memory_mb or record.free_cpus < cpus:
                continue
            key = (-record.free_memory_mb, host_id)
            if best_key is None or key < best_key:
                best, best_key = record, key
        return best

    def change_usage(
        self, record: _HostRecord, app: str, cpus: int, memory_mb: int, step: int
    ) -> None:
        """Add (``step`` 1) or remove (``step`` -1) one machine of ``app`` on ``record``."""
        host_id = record.host_id
        if record.up:
            order = self.order
            del order[bisect_left(order, (-record.free_memory_mb, host_id))]
        record.free_cpus -= step * cpus
        record.free_memory_mb -= step * memory_mb
        if record.up:
            insort(self.order, (-record.free_memory_mb, host_id))
        old = record.apps.get(app, 0)
        new = old + step
        if new:
            record.apps[app] = new
        else:
            del record.apps[app]
        spread = self.spreads.get(app)
        if spread is None:
            spread = self.spreads[app] = _AppSpread()
        spread.total += step
        if record.up:
            spread.move(host_id, old, new)

    def refusal(self, cpus: int, memory_mb: int) -> NoPlacement:
        region = self.region
        if not self.order:
            if self.down == 0:
                return NoPlacement(region, _rule.reason_no_hosts(region))
            return NoPlacement(region, _rule.reason_no_host_up(region, self.down))
        largest = _rule.largest_free(
            (r.host_id, r.free_cpus, r.free_memory_mb) for r in self.up_hosts.values()
        )
        reason = _rule.reason_no_room(region, cpus, memory_mb, largest, len(self.order), self.down)
        return NoPlacement(region, reason)


class Scheduler:
    """An incremental index over many hosts for placing machines one after another.

    Built from a snapshot of ``HostCapacity``; every successful ``place``
    commits its machine into the index (used cpus, memory and the app's
    count on that host), so the next call sees it. Each answer is the one
    ``place_machine`` gives on ``snapshot()`` taken just before the call.

    Not thread-safe: one caller at a time. No I/O, no clock, no randomness.
    """

    def __init__(self, hosts: Iterable[HostCapacity]) -> None:
        """Index ``hosts``; raises ``ValidationError`` when two share an id."""
        snapshot = list(hosts)
        _rule.require_unique_ids(host.host_id for host in snapshot)
        self._records: dict[str, _HostRecord] = {}
        self._regions: dict[str, _RegionIndex] = {}
        for host in snapshot:
            record = _HostRecord(host)
            self._records[record.host_id] = record
            region = self._regions.get(record.region)
            if region is None:
                region = self._regions[record.region] = _RegionIndex(record.region)
            region.add(record)

    def place(self, request: PlacementRequest) -> Placement | NoPlacement:
        """Choose a host for one machine and commit it, or say why none fits.

        Same rule as ``place_machine``. A ``NoPlacement`` changes nothing.
        Never raises for a well-formed request; an unknown region is a
        ``NoPlacement``.
        """
        region = self._regions.get(request.region)
        if region is None:
            return NoPlacement(request.region, _rule.reason_no_hosts(request.region))
        app = request.app
        record = region.best(app, request.cpus, request.memory_mb)
        if record is None:
            return region.refusal(request.cpus, request.memory_mb)
        spread = region.spreads.get(app)
        reason = _rule.reason_placed(
            record.host_id,
            app,
            region.region,
            record.apps.get(app, 0),
            spread.total if spread is not None else 0,
            record.free_memory_mb,
            record.memory_mb,
        )
        region.change_usage(record, app, request.cpus, request.memory_mb, 1)
        return Placement(record.host_id, region.region, reason)

    def place_on(self, host_id: str, request: PlacementRequest) -> Placement | NoPlacement:
        """Commit the machine on ``host_id`` (its volume's host) if that host is up in
        ``request.region`` with room; else say why not. A ``NoPlacement`` changes nothing."""
        record = self._records.get(host_id)
        region = self._regions.get(request.region)
        if record is None or region is None or record.region != request.region:
            return NoPlacement(
                request.region,
                f"host {host_id} of the machine's volume is not in region {request.region}",
            )
        if host_id not in region.up_hosts:
            return NoPlacement(
                request.region,
                f"host {host_id}, which holds the machine's volume, is not up",
            )
        if record.free_cpus < request.cpus or record.free_memory_mb < request.memory_mb:
            return NoPlacement(
                request.region,
                f"host {host_id}, which holds the machine's volume, has room for "
                f"{record.free_cpus} cpus / {record.free_memory_mb} MB, not "
                f"{request.cpus} cpus / {request.memory_mb} MB",
            )
        region.change_usage(record, request.app, request.cpus, request.memory_mb, 1)
        return Placement(host_id, request.region, f"placed on {host_id}: it holds the volume")

    def hold(self, host_id: str, app: str, cpus: int, memory_mb: int) -> None:
        """Commit one machine of ``app`` (with that guest size) on ``host_id``, as
        ``place`` does for the host it chooses: for a machine placed elsewhere.

        Works on down hosts too, and may over-commit a host (it then has no
        room). Raises ``NotFoundError`` for an unknown host and
        ``ValidationError`` for negative sizes, changing nothing.
        """
        record = self._records.get(host_id)
        if record is None:
            raise NotFoundError(
                f"host {host_id} is not in the scheduler", hint="hold on a host it was built with"
            )
        if cpus < 0 or memory_mb < 0:
            raise ValidationError(
                f"cannot hold {cpus} cpus / {memory_mb} MB on host {host_id}: "
                "sizes must not be negative"
            )
        self._regions[record.region].change_usage(record, app, cpus, memory_mb, 1)

    def release(self, host_id: str, app: str, cpus: int, memory_mb: int) -> None:
        """Take one machine of ``app`` (with that guest size) off ``host_id``.

        Works on down hosts too. Checks everything before changing anything:
        raises ``NotFoundError`` for an unknown host, ``ValidationError`` for
        negative sizes, and ``ConflictError`` when the host holds no machine
        of ``app`` or less cpu or memory in use than the release gives back.
        """
        record = self._records.get(host_id)
        if record is None:
            raise NotFoundError(
                f"host {host_id} is not in the scheduler",
                hint="release on a host it was built with",
            )
        if cpus < 0 or memory_mb < 0:
            raise ValidationError(
                f"cannot release {cpus} cpus / {memory_mb} MB from host {host_id}: "
                "sizes must not be negative"
            )
        if record.apps.get(app, 0) == 0:
            raise ConflictError(f"host {host_id} holds no machine of app {app}; nothing to release")
        used_cpus = record.cpus - record.free_cpus
        used_memory_mb = record.memory_mb - record.free_memory_mb
        if cpus > used_cpus or memory_mb > used_memory_mb:
            raise ConflictError(
                f"cannot release {cpus} cpus / {memory_mb} MB from host {host_id}: "
                f"only {used_cpus} cpus / {used_memory_mb} MB are in use"
            )
        self._regions[record.region].change_usage(record, app, cpus, memory_mb, -1)

    def snapshot(self) -> list[HostCapacity]:
        """The hosts as the index sees them now, in the order the scheduler was built with."""
        return [record.to_capacity() for record in self._records.values()]
