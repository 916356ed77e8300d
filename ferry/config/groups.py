"""Process groups: ``[processes]``, the ``processes = [...]`` filter of other sections, and
``[[files]]``.

An app's machines are split into process groups, one command each; a
section with ``processes = ["web"]`` applies only to the machines of the
groups it names, and without ``processes`` to every group (flyctl's rule).
``Scoped`` carries a section's value with the groups it applies to; the
app config picks, per group, the values that apply (``AppConfig.machine_config``).
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from ferry.config.reader import Table, show
from ferry.model.machine_files import MAX_FILE_BYTES

__all__ = [
    "DEFAULT_PROCESS_GROUP",
    "FileSource",
    "Scoped",
    "check_group_names",
    "group_names",
    "parse_files",
    "parse_processes",
    "scope_of",
]

#: The process group of an app whose fly.toml has no ``[processes]`` (Fly's name).
DEFAULT_PROCESS_GROUP = "app"

_GROUP_NAME = re.compile(r"[a-z0-9_-]{1,63}")
T = TypeVar("T")


class Scoped(BaseModel, Generic[T]):
    """A section's ``value`` and the groups it applies to (empty: every group)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: T
    processes: tuple[str, ...] = ()

    def applies_to(self, group: str) -> bool:
        return not self.processes or group in self.processes


class FileSource(BaseModel):
    """One ``[[files]]`` entry: ``raw_value`` (base64) or ``local_path``, read at deploy time.

    ``local_path`` is absolute (resolved against the fly.toml's directory);
    ``load_app_config`` reads it and fills ``raw_value``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    guest_path: str
    raw_value: str | None = None
    local_path: Path | None = None


def parse_processes(table: Table | None) -> dict[str, list[str]]:
    """``[processes]``: group name → command (``[]``: the image's own CMD, for ``app = ""``).

    Empty dict when the section is absent: the app then has one group, ``app``.
    """
    if table is None:
        return {}
    if not table.data:
        raise table.fail(None, "names no process group", hint='write e.g. app = "bin/server"')
    groups: dict[str, list[str]] = {}
    for name, value in table.data.items():
        if not _GROUP_NAME.fullmatch(name):
            raise table.error(name, "is not a valid process group name; use a-z, 0-9, - and _")
        if isinstance(value, str) and not value.strip():
            groups[name] = []
            continue
        cmd = table.command(name)
        assert cmd is not None  # the key exists
        groups[name] = cmd
    return groups


def group_names(processes: dict[str, list[str]]) -> tuple[str, ...]:
    """The app's groups in file order; ``("app",)`` without ``[processes]``."""
    return tuple(processes) or (DEFAULT_PROCESS_GROUP,)


def scope_of(table: Table, groups: tuple[str, ...]) -> tuple[str, ...]:
    """The section's ``processes = [...]``, each name checked against the app's ``groups``.

    Raises ``ConfigError`` naming a group that ``[processes]`` does not define.
    """
    names = table.string_list("processes") or []
    check_group_names(table, names, groups)
    return tuple(names)


def check_group_names(table: Table, names: list[str], groups: tuple[str, ...]) -> None:
    for name in names:
        if name not in groups:
            known = ", ".join(f'"{group}"' for group in groups)
            raise table.error(
                "processes",
                f"names the process group {show(name)}, which [processes] does not define"
                f" (groups: {known})",
                hint="add it to [processes] or fix the name",
            )


def parse_files(
    tables: list[Table], groups: tuple[str, ...], base_dir: Path
) -> list[Scoped[FileSource]]:
    """``[[files]]``: ``guest_path`` and one of ``raw_value`` (base64) or ``local_path``.

    An entry whose source is ``""`` writes nothing (Fly's way to drop a file on
    the next deploy). ``secret_name`` is refused until secrets exist.
    """
    files: list[Scoped[FileSource]] = []
    for table in tables:
        table.check_keys(
            ("guest_path", "raw_value", "local_path", "processes"),
            unsupported={
                "secret_name": "files made from secrets are not built yet; "
                "use raw_value or local_path"
            },
        )
        guest_path = table.optional_string("guest_path")
        if guest_path is None:
            raise table.fail(None, "needs a guest_path: where the file goes in the machine")
        if not guest_path.startswith("/") or guest_path.endswith("/") or ".." in guest_path:
            raise table.error(
                "guest_path", f"must be an absolute file path without '..', got {show(guest_path)}"
            )
        if any(table.data.get(key) == "" for key in ("raw_value", "local_path")):
            scope_of(table, groups)
            continue  # Fly's way to remove a file: its source set to ""; the entry writes nothing
        raw = table.optional_string("raw_value")
        local = table.optional_string("local_path")
        if (raw is None) == (local is None):
            raise table.fail(
                "raw_value" if raw is not None else None,
                "needs exactly one of raw_value (base64 content) or local_path",
            )
        if raw is not None:
            _check_base64(table, raw)
        local_path = None
        if local is not None:
            candidate = Path(local)
            local_path = (candidate if candidate.is_absolute() else base_dir / candidate).absolute()
        source = FileSource(guest_path=guest_path, raw_value=raw, local_path=local_path)
        files.append(Scoped(value=source, processes=scope_of(table, groups)))
    return files


def _check_base64(table: Table, raw: str) -> None:
    try:
        content = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise table.error(
            "raw_value",
            "must be base64-encoded content",
            hint="encode it with `base64 -w0 FILE`, or use local_path",
        ) from None
    if len(content) > MAX_FILE_BYTES:
        raise table.error("raw_value", f"must decode to at most {MAX_FILE_BYTES} bytes")
