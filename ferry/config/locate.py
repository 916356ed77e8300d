"""Find the line of a table or key in TOML text, for error messages.

``tomllib`` reports no positions for the values it parses, so Ferry searches
the text instead. The search is a heuristic that is right for the way people
write fly.toml files:

* it follows table headers (``[http_service]``, ``[[services.ports]]``) in
  order, counting array-of-tables headers to tell ``[[services]]`` #1 from #2;
* inside the table it looks for ``key =`` (also quoted or dotted keys);
* failing that, it looks for the key anywhere inside the table's lines (inline
  tables), then for a sub-table header named after the key.

Known limits: a header or ``key =`` inside a multi-line string, quoted keys
containing dots, and arrays of inline tables (``services = [{...}]``) can point
at the wrong line or at the enclosing table. When nothing matches the answer
is ``None`` and the message names the file without a line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["KeyLocator", "TablePath"]

#: The position of a table in the parsed document: names, with the index of
#: an array-of-tables entry after its name, e.g. ``("services", 0, "ports", 1)``.
TablePath = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")


@dataclass(frozen=True)
class _Header:
    index: int  # 0-based line index
    name: str  # dotted, whitespace and quotes removed
    is_array: bool


def _normalise(dotted: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in dotted.split("."))


def _key_pattern(names: Sequence[str]) -> re.Pattern[str]:
    parts = [rf"[\"']?{re.escape(name)}[\"']?" for name in names]
    return re.compile(r"^\s*" + r"\s*\.\s*".join(parts) + r"\s*=")


class KeyLocator:
    """Answers "on which line is this key?" for one TOML text. Pure; never raises."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self._headers: list[_Header] = []
        for index, line in enumerate(self._lines):
            match = _HEADER.match(line)
            if match:
                name = _normalise(match.group(2))
                self._headers.append(_Header(index, name, match.group(1) == "[["))

    def line_of(self, path: TablePath, key: str | None = None) -> int | None:
        """The 1-based line of ``key`` in the table at ``path`` (or of the table itself).

        Falls back to the table's header line, then to ``None``.
        """
        start, end, dotted, unmatched = self._table_span(path)
        if key is None:
            return start + 1 if start >= 0 else None
        found = self._find_key(start, end, dotted, [*unmatched, key])
        if found is not None:
            return found + 1
        return start + 1 if start >= 0 else None

    def _table_span(self, path: TablePath) -> tuple[int, int, str, list[str]]:
        """``(header index or -1, end index, dotted name, names not found as headers)``."""
        start, end = -1, len(self._lines)
        names: list[str] = []
        matched = 0
        position = 0
        while position < len(path):
            segment = path[position]
            if not isinstance(segment, str):
                position += 1
                continue
            names.append(segment)
            following = path[position + 1] if position + 1 < len(path) else None
            array_index = following if isinstance(following, int) else None
            position += 1 if array_index is None else 2
            dotted = ".".join(names)
            candidates = [
                header
                for header in self._headers
                if start < header.index < end
                and header.name == dotted
                and header.is_array == (array_index is not None)
            ]
            wanted = array_index or 0
            if len(candidates) <= wanted:
                continue
            header = candidates[wanted]
            start = header.index
            end = next(
                (
                    later.index
                    for later in self._headers
                    if later.index > start and not later.name.startswith(dotted + ".")
                ),
                end,
            )
            matched = len(names)
        return start, end, ".".join(names[:matched]), names[matched:]

    def _find_key(self, start: int, end: int, dotted: str, names: list[str]) -> int | None:
        direct_end = next((h.index for h in self._headers if start < h.index < end), end)
        pattern = _key_pattern(names)
        for index in range(start + 1, direct_end):
            if pattern.search(self._lines[index]):
                return index
        loose = re.compile(rf"(?:^|[\s{{,.])[\"']?{re.escape(names[-1])}[\"']?\s*=")
        for index in range(start + 1, direct_end):
            if loose.search(self._lines[index]):
                return index
        prefix = ".".join(part for part in (dotted, *names) if part)
        for header in self._headers:
            inside = start < header.index < end
            if inside and (header.name == prefix or header.name.startswith(prefix + ".")):
                return header.index
        return None
