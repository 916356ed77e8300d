"""Typed reads from one parsed TOML table, with errors that name file, line and key.

Every getter either returns a value of the promised type or raises
``ConfigError`` whose message reads like
``fly.toml:7: [http_service] internal_port must be an integer between 1 and
65535, got "eighty"``. Nothing here does I/O.
"""

from __future__ import annotations

import difflib
import json
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ferry.config.locate import KeyLocator, TablePath
from ferry.errors import ConfigError, ValidationError
from ferry.model import parse_duration

__all__ = ["Source", "Table", "section_label", "show"]


@dataclass(frozen=True)
class Source:
    """The file being read: its name for messages, a locator over its text, and the
    warnings gathered while reading it (``file:line: ...`` sentences, in file order)."""

    filename: str
    locator: KeyLocator
    warnings: list[str] = field(default_factory=list)

    def warn(self, path: TablePath, key: str | None, sentence: str) -> None:
        """Record a ``file:line: sentence`` warning (the line being that of ``key``)."""
        line = self.locator.line_of(path, key)
        where = f"{self.filename}:{line}" if line is not None else self.filename
        self.warnings.append(f"{where}: {sentence}")

    def error(
        self, path: TablePath, key: str | None, sentence: str, *, hint: str | None = None
    ) -> ConfigError:
        """A ``ConfigError`` prefixed with ``file:line:`` (or ``file:`` when no line is found)."""
        line = self.locator.line_of(path, key)
        where = f"{self.filename}:{line}" if line is not None else self.filename
        return ConfigError(f"{where}: {sentence}", hint=hint)


def section_label(path: TablePath) -> str:
    """How a table is written in TOML: ``[http_service]``, ``[[services.ports]]``, or ``""``."""
    if not path:
        return ""
    dotted = ".".join(part for part in path if isinstance(part, str))
    return f"[[{dotted}]]" if isinstance(path[-1], int) else f"[{dotted}]"


def show(value: object) -> str:
    """A value as the user wrote it, for "got …" in messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


class Table:
    """One TOML table at a known ``path`` in a ``Source``; getters validate as they read."""

    def __init__(self, data: Mapping[str, object], path: TablePath, source: Source) -> None:
        self.data = data
        self.path = path
        self.source = source

    @property
    def label(self) -> str:
        return section_label(self.path)

    def error(self, key: str, message: str, *, hint: str | None = None) -> ConfigError:
        """``file:line: [section] key <message>``."""
        subject = f"{self.label} {key}" if self.label else key
        return self.source.error(self.path, key, f"{subject} {message}", hint=hint)

    def fail(self, key: str | None, sentence: str, *, hint: str | None = None) -> ConfigError:
        """``file:line: [section] <sentence>``, the line being that of ``key``."""
        text = f"{self.label} {sentence}" if self.label else sentence
        return self.source.error(self.path, key, text, hint=hint)

    def check_keys(
        self,
        known: Collection[str],
        *,
        unsupported: Mapping[str, str] | None = None,
        ignored: Mapping[str, str] | None = None,
        strict: bool = False,
    ) -> None:
        """Raise for the first key Fly documents that Ferry does not do; warn about the rest.

        ``unsupported`` maps Fly keys Ferry does not implement yet to the advice
        given with the error. ``ignored`` maps keys that have no effect on
        Ferry (as they have none on a Machines app under flyctl) to the reason
        given in a warning. A key in neither and not ``known`` is unknown: a
        warning naming it (flyctl warns too), with a "did you mean" when close;
        with ``strict`` (Ferry's own sections, which flyctl never reads) an error.
        """
        for key in self.data:
            if unsupported and key in unsupported:
                raise self.error(key, "is not supported yet by Ferry", hint=unsupported[key])
        where = f" in {self.label}" if self.label else ""
        for key in self.data:
            if key in known:
                continue
            if ignored and key in ignored:
                self.source.warn(self.path, key, f'"{key}"{where} is ignored: {ignored[key]}')
                continue
            close = difflib.get_close_matches(key, list(known), n=1)
            advice = f' (did you mean "{close[0]}"?)' if close else ""
            if strict:
                raise self.source.error(self.path, key, f'unknown key "{key}"{where}{advice}')
            self.source.warn(self.path, key, f'unknown key "{key}"{where} ignored{advice}')

    def has(self, key: str) -> bool:
        return key in self.data

    def optional_string(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {show(value)}")
        if not value.strip():
            raise self.error(key, "must not be empty")
        return value

    def string(self, key: str, default: str) -> str:
        value = self.optional_string(key)
        return default if value is None else value

    def choice(self, key: str, choices: Collection[str], default: str) -> str:
        value = self.string(key, default)
        if value not in choices:
            options = ", ".join(f'"{choice}"' for choice in choices)
            raise self.error(key, f"must be one of {options}, got {show(value)}")
        return value

    def optional_integer(
        self, key: str, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
        ):
            if minimum is not None and maximum is not None:
                wanted = f"an integer between {minimum} and {maximum}"
            elif minimum is not None:
                wanted = f"an integer of at least {minimum}"
            else:
                wanted = "an integer"
            raise self.error(key, f"must be {wanted}, got {show(value)}")
        return value

    def integer(
        self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.optional_integer(key, minimum=minimum, maximum=maximum)
        return default if value is None else value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {show(value)}")
        return value

    def duration(
        self,
        key: str,
        default: float,
        *,
        maximum: float | None = None,
        bare: Literal["ms", "s"] = "ms",
    ) -> float:
        """Seconds from a duration string (``"5s"``, ``"1m30s"``, ``"500ms"``) or a bare number.

        As flyctl reads fly.toml, a bare number is milliseconds (``bare="ms"``);
        ``kill_timeout`` is the exception, in seconds (``bare="s"``).
        """
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(key, f'must be a duration such as "10s", got {show(value)}')
        text = value.strip() if isinstance(value, str) else ""
        # Go's time.ParseDuration, which flyctl uses, wants a unit on every non-zero string.
        if text.replace(".", "", 1).isdigit() and float(text) != 0:
            raise self.error(key, f'needs a unit, such as "{text}s", got {show(value)}')
        if isinstance(value, int | float) and bare == "ms":
            value = value / 1000 if value >= 0 else value
        try:
            seconds = parse_duration(value)
        except ValidationError:
            raise self.error(
                key, f'must be a duration such as "10s" or "1m30s", got {show(value)}'
            ) from None
        if maximum is not None and seconds > maximum:
            raise self.error(key, f"must be at most {maximum:g} seconds, got {show(value)}")
        return seconds

    def duration_text(self, key: str, default: str) -> str:
        """Like ``duration`` but keeps the text form the Machines API carries (``"10s"``)."""
        value = self.data.get(key)
        self.duration(key, 0.0)
        if value is None:
            return default
        return f"{value}ms" if isinstance(value, int | float) else str(value)

    def string_map(self, key: str) -> dict[str, str]:
        """A table of strings; integers, floats and booleans are turned into their text."""
        table = self.table(key)
        return {} if table is None else table.strings()

    def strings(self) -> dict[str, str]:
        """This whole table as text values; integers, floats and booleans become their text."""
        result: dict[str, str] = {}
        for name, value in self.data.items():
            if isinstance(value, bool):
                result[name] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                result[name] = str(value)
            else:
                raise self.error(name, f"must be a string, number or boolean, got {show(value)}")
        return result

    def string_list(self, key: str) -> list[str] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(
                key, f'must be an array of strings such as ["a", "b"], got {show(value)}'
            )
        return [str(item) for item in value]

    def command(self, key: str) -> list[str] | None:
        """A command as an array of strings, or a string split like a shell would."""
        value = self.data.get(key)
        if isinstance(value, str):
            try:
                words = shlex.split(value)
            except ValueError as exc:
                raise self.error(key, f"cannot be split into words: {exc}") from None
            if not words:
                raise self.error(key, "must not be empty")
            return words
        if value is not None and not isinstance(value, list):
            raise self.error(key, f"must be a string or an array of strings, got {show(value)}")
        return self.string_list(key)

    def table(self, key: str) -> Table | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, got {show(value)}")
        return Table(value, (*self.path, key), self.source)

    def tables(self, key: str) -> list[Table]:
        """An array of tables (``[[key]]``); a single table (``[key]``) counts as one."""
        value = self.data.get(key)
        if value is None:
            return []
        if isinstance(value, dict):
            return [Table(value, (*self.path, key), self.source)]
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(key, f"must be a table or an array of tables, got {show(value)}")
        return [
            Table(item, (*self.path, key, index), self.source) for index, item in enumerate(value)
        ]
