"""``[[mounts]]`` of fly.toml: the volume each machine of a process group mounts.

Fly's keys: ``source`` (the volume name), ``destination`` (the path in the
machine), ``processes``, ``initial_size`` (the size of the volumes a deploy
creates, e.g. ``"10gb"`` or ``10``; default 1 GB), ``snapshot_retention``
(days). ``scheduled_snapshots`` and the ``auto_extend_size_*`` keys are
refused by name: Ferry takes no scheduled snapshots and extends only on
``ferry volumes extend``. A group mounts at most one volume, as on Fly.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from ferry.config.groups import Scoped, scope_of
from ferry.config.reader import Table, show
from ferry.model.volume import mount_path_problem, volume_name_problem

__all__ = ["MountSource", "mount_for", "parse_mounts"]

_SIZE = re.compile(r"^\s*(\d+)\s*(gb|g|gib)?\s*$", re.IGNORECASE)
_AUTO_EXTEND = "automatic extension is not built; use `ferry volumes extend`"


class MountSource(BaseModel):
    """One ``[[mounts]]`` entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    destination: str
    initial_size_gb: int = 1
    snapshot_retention: int = 5


def parse_mounts(tables: list[Table], groups: tuple[str, ...]) -> list[Scoped[MountSource]]:
    """Each ``[[mounts]]`` entry, checked; ``ConfigError`` naming the key and line."""
    mounts: list[Scoped[MountSource]] = []
    for table in tables:
        table.check_keys(
            ("source", "destination", "processes", "initial_size", "snapshot_retention"),
            unsupported={
                "scheduled_snapshots": "Ferry takes snapshots on request only "
                "(`ferry volumes snapshots create`); remove the key",
                "auto_extend_size_threshold": _AUTO_EXTEND,
                "auto_extend_size_increment": _AUTO_EXTEND,
                "auto_extend_size_limit": _AUTO_EXTEND,
            },
        )
        source = table.optional_string("source")
        if source is None:
            raise table.fail(None, "needs a source: the name of the volume to mount")
        if problem := volume_name_problem(source):
            raise table.error("source", f"{show(source)} {problem}")
        destination = table.optional_string("destination")
        if destination is None:
            raise table.fail(None, "needs a destination: where the volume is mounted")
        if problem := mount_path_problem(destination):
            raise table.error("destination", problem)
        retention = table.optional_integer("snapshot_retention", minimum=1, maximum=60)
        mount = MountSource(
            source=source,
            destination=destination.rstrip("/") or "/",
            initial_size_gb=_initial_size(table),
            snapshot_retention=5 if retention is None else retention,
        )
        scoped: Scoped[MountSource] = Scoped(value=mount, processes=scope_of(table, groups))
        for group in groups:
            if scoped.applies_to(group) and mount_for(mounts, group) is not None:
                raise table.fail(
                    "source",
                    f"is a second mount of process group {show(group)}: a machine mounts one "
                    "volume (as on Fly)",
                    hint="scope each [[mounts]] to its groups with processes = [...]",
                )
        mounts.append(scoped)
    return mounts


def mount_for(mounts: list[Scoped[MountSource]], group: str) -> MountSource | None:
    """The mount of ``group``'s machines, if any."""
    return next((m.value for m in mounts if m.applies_to(group)), None)


def _initial_size(table: Table) -> int:
    value = table.data.get("initial_size")
    if value is None:
        return 1
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    match = _SIZE.match(text) if isinstance(text, str) else None
    if match is None or int(match.group(1)) < 1:
        raise table.error(
            "initial_size",
            f'must be a size of at least 1 GB such as "10gb" or 10, got {show(value)}',
        )
    return int(match.group(1))
