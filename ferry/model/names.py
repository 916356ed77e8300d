"""The naming rules of apps and machines, checked the same way by the API and fly.toml.

An app name is Fly's: only lowercase letters, digits and dashes (flyctl:
"app name must consist of only lowercase letters, numbers, and dashes"), and,
since it is the first label of the app's hostname, a DNS label: 2-63
characters that start and end with a letter or digit. A machine name (Fly
documents no rule; Ferry's own): 1-63 letters, digits, ``.``, ``_`` or ``-``,
starting with a letter or digit.

Each check matches the whole string: nothing may follow, not even a newline.
"""

from __future__ import annotations

import re

__all__ = [
    "APP_NAME_RULE",
    "MACHINE_NAME_RULE",
    "MAX_NAME_LENGTH",
    "app_name_problem",
    "machine_name_problem",
]

MAX_NAME_LENGTH = 63
APP_NAME_RULE = (
    "use 2-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
)
MACHINE_NAME_RULE = "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"

_APP_CHARS = re.compile(r"[a-z0-9-]+")
_MACHINE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def app_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as an app name, in a few words; ``None`` when it is valid."""
    if len(name) < 2:
        return "is shorter than 2 characters"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters ({len(name)})"
    if not _APP_CHARS.fullmatch(name):
        if name.lower() != name and _APP_CHARS.fullmatch(name.lower()):
            return "has uppercase letters"
        return "has characters other than lowercase letters, digits and '-'"
    if name.startswith("-") or name.endswith("-"):
        return "starts or ends with '-'"
    return None


def machine_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a machine name; ``None`` when it is valid."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters ({len(name)})"
    if not _MACHINE.fullmatch(name):
        return "has a character that is not allowed, or starts with one of '.', '_', '-'"
    return None
