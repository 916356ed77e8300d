"""Durations as Fly writes them: ``"5s"``, ``"1m30s"``, ``"250ms"`` or a bare number of seconds."""

from __future__ import annotations

import re

from ferry.errors import ValidationError

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | int | float) -> float:
    """Return ``value`` in seconds.

    Accepts a number (seconds) or a Go-style duration string. Raises
    ``ValidationError`` naming the value when it cannot be read.
    """
    if isinstance(value, bool):
        raise ValidationError(f"invalid duration {value!r}", hint='write it like "5s" or "1m30s"')
    if isinstance(value, int | float):
        if value < 0:
            raise ValidationError(f"invalid duration {value!r}: must not be negative")
        return float(value)
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValidationError(f"invalid duration {value!r}", hint='write it like "5s" or "1m30s"')
    return total


def format_duration(seconds: float) -> str:
    """Render seconds as a compact duration string (``"5s"``, ``"250ms"``)."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:g}s"


def number_as_duration(value: object) -> object:
    """A number of seconds as a duration string (``2.5`` → ``"2.5s"``); anything else as is.

    Floats are written fixed-point to the microsecond, never with an exponent
    (``"1e-05s"`` is no duration); infinities and NaN stay unreadable.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, int):
        return f"{value}s"
    return f"{value:.6f}".rstrip("0").rstrip(".") + "s"
