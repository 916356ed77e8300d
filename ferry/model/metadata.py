"""Limits on machine metadata (``config.metadata``), checked wherever it is written.

Metadata is small labels Fly's tools read back (``fly_process_group``,
``fly_platform_version``) and that ``?metadata.KEY=VALUE`` filters on. The
limits keep one machine row small and make a key usable in a query string.
``metadata_problem`` is pure: ``None`` when all is well, else a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "MAX_METADATA_KEYS",
    "MAX_METADATA_KEY_LENGTH",
    "MAX_METADATA_VALUE_BYTES",
    "key_problem",
    "metadata_problem",
    "value_problem",
]

MAX_METADATA_KEYS: Final = 64
MAX_METADATA_KEY_LENGTH: Final = 64
MAX_METADATA_VALUE_BYTES: Final = 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a metadata key, or ``None``."""
    if len(key) > MAX_METADATA_KEY_LENGTH:
        return f"metadata key {key[:20]!r}… is {len(key)} characters long; the limit is " + str(
            MAX_METADATA_KEY_LENGTH
        )
    if not _KEY.match(key):
        return (
            f"metadata key {key!r} is not allowed: use letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return None


def value_problem(key: str, value: str) -> str | None:
    """Why ``value`` cannot be stored under ``key``, or ``None``."""
    size = len(value.encode())
    if size > MAX_METADATA_VALUE_BYTES:
        return (
            f"metadata value of {key!r} is {size} bytes; the limit is "
            f"{MAX_METADATA_VALUE_BYTES} bytes"
        )
    return None


def metadata_problem(metadata: Mapping[str, str]) -> str | None:
    """The first reason ``metadata`` breaks a limit (count, key, value size), or ``None``."""
    if len(metadata) > MAX_METADATA_KEYS:
        return f"a machine has at most {MAX_METADATA_KEYS} metadata keys; this has {len(metadata)}"
    for key, value in metadata.items():
        problem = key_problem(key) or value_problem(key, value)
        if problem:
            return problem
    return None
