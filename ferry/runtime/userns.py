"""Host uid/gid ranges for machines' user namespaces: one range per machine, never shared.

Root inside a machine is host uid ``IdRange.host_id`` (and gid the same); ids
0..size-1 inside map to ``host_id``..``host_id+size-1`` on the host. Slot ``k``
(1, 2, …) owns the range starting at ``k * SLOT_STRIDE``, so a host uid tells
which slot it belongs to at a glance (uid 300000 is slot 3's root).

``IdRangeAllocator`` keeps the table ``{owner: slot}`` in one JSON file under an
fcntl lock, so a machine keeps its range across restarts of itself and of the
agent, and agents that share a kernel (the embedded cluster's hosts) never hand
out the same range when they share the file. ``choose_slot`` is the pure core.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.errors import RuntimeFailure

__all__ = [
    "ID_RANGE_SIZE",
    "MAX_SLOT",
    "SLOT_STRIDE",
    "IdRange",
    "IdRangeAllocator",
    "choose_slot",
    "range_owner",
]

#: ids each machine gets: 0..65535 inside, as Docker's and podman's defaults.
ID_RANGE_SIZE = 65_536
#: slot k starts at k * 100000: ranges never overlap (100000 > 65536), never touch
#: the host's own users (slot 0, below 100000, is never handed out).
SLOT_STRIDE = 100_000
#: the last slot whose range still ends below uid 2^32-1 (the kernel's invalid id).
MAX_SLOT = (2**32 - 1 - ID_RANGE_SIZE) // SLOT_STRIDE


@dataclass(frozen=True)
class IdRange:
    """Ids ``0..size-1`` of a user namespace, mapped to ``host_id..host_id+size-1``."""

    host_id: int
    size: int = ID_RANGE_SIZE

    def __post_init__(self) -> None:
        if self.host_id < 1 or self.size < 1 or self.host_id + self.size > 2**32 - 1:
            raise ValueError(
                f"uid range {self.host_id}+{self.size} is not within the host's uids 1..2^32-2"
            )

    def oci_mappings(self) -> list[dict[str, int]]:
        """The OCI ``linux.uidMappings`` (and, identical, ``gidMappings``)."""
        return [{"containerID": 0, "hostID": self.host_id, "size": self.size}]

    def proc_map(self) -> str:
        """The line for ``/proc/<pid>/uid_map`` and ``gid_map``."""
        return f"0 {self.host_id} {self.size}\n"

    def to_host(self, inside: int) -> int:
        """The host id of id ``inside`` of the namespace. Raises ``ValueError`` if unmapped."""
        if not 0 <= inside < self.size:
            raise ValueError(f"id {inside} is outside the mapped range 0..{self.size - 1}")
        return self.host_id + inside


def range_owner(host_id: str, machine_id: str) -> str:
    """The table's key for a machine on a host: agents sharing a table keep apart."""
    return f"{host_id}/{machine_id}"


def slot_range(slot: int) -> IdRange:
    """The range of slot ``slot`` (1..MAX_SLOT). Pure."""
    return IdRange(slot * SLOT_STRIDE)


def choose_slot(taken: set[int], limit: int = MAX_SLOT) -> int | None:
    """The lowest free slot in 1..limit; ``None`` when all are taken. Pure.

    The lowest, not a random one: a freed range is reused first, so the host's
    uid space stays compact and readable.
    """
    for slot in range(1, limit + 1):
        if slot not in taken:
            return slot
    return None


class IdRangeAllocator:
    """The table of which owner (a machine id) holds which slot, in ``path``.

    Blocking; thread- and process-safe (every call holds an fcntl lock on
    ``path`` + ``.lock`` and rewrites the table atomically). ``limit``: the
    highest slot handed out (tests use a small one).
    """

    def __init__(self, path: Path, *, limit: int = MAX_SLOT) -> None:
        self.path = path.absolute()
        self.limit = min(limit, MAX_SLOT)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def acquire(self, owner: str) -> IdRange:
        """The range of ``owner``: the one it holds, else the lowest free one. Idempotent.

        Raises ``RuntimeFailure`` when every slot is taken or the table is unreadable.
        """
        with self._table() as table:
            slot = table.get(owner)
            if slot is None:
                slot = choose_slot(set(table.values()), self.limit)
                if slot is None:
                    raise RuntimeFailure(
                        f"no free uid range for machine {owner}: all {self.limit} are in use",
                        hint="destroy machines this host no longer needs",
                    )
                table[owner] = slot
            return slot_range(slot)

    def release(self, owner: str) -> None:
        """Free ``owner``'s range, if it holds one. Idempotent."""
        with self._table() as table:
            table.pop(owner, None)

    def release_unclaimed(self, prefix: str, claimed: set[str], suspects: set[str]) -> set[str]:
        """Free the ranges of owners under ``prefix`` that are in ``suspects`` (found
        unclaimed by the previous call) and still not in ``claimed``; return the owners
        under ``prefix`` that are unclaimed now (the next call's ``suspects``).

        Two passes apart, an owner that only just acquired its range (before the
        caller's view of what is claimed was taken) is never freed.
        """
        with self._table() as table:
            unclaimed = {o for o in table if o.startswith(prefix) and o not in claimed}
            for owner in unclaimed & suspects:
                del table[owner]
            return unclaimed - suspects

    def held(self) -> dict[str, IdRange]:
        """Every owner and its range."""
        with self._table() as table:
            return {owner: slot_range(slot) for owner, slot in table.items()}

    @contextlib.contextmanager
    def _table(self) -> Iterator[dict[str, int]]:
        """Yield the table under the lock; write it back if the caller changed it."""
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            table = self._read()
            before = dict(table)
            yield table
            if table != before:
                self._write(table)
        finally:
            os.close(fd)

    def _read(self) -> dict[str, int]:
        try:
            loaded: Any = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as exc:
            raise RuntimeFailure(
                f"the uid range table {self.path} is unreadable: {exc}",
                hint="restore it from a backup, or remove it only when no machine runs here",
            ) from exc
        if not isinstance(loaded, Mapping):
            raise RuntimeFailure(f"the uid range table {self.path} is not a JSON object")
        return {str(owner): int(slot) for owner, slot in loaded.items()}

    def _write(self, table: dict[str, int]) -> None:
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        with temporary.open("w") as handle:
            json.dump(table, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
