"""What a secret may be called and hold, and the ``NAME=VALUE`` formats of the CLI.

Pure. Every error names the secret (or the line or argument) and never
echoes a value: a typo in a command line must not land a credential in a
terminal's scrollback, a CI log or the API's error answer.

Names are environment variable names (``[A-Za-z_][A-Za-z0-9_]*``, at most
``MAX_NAME_CHARS``). Refused: the ``FERRY_`` prefix (Ferry's own settings) and
the ``FLY_*`` variables the platform sets to describe the machine
(``RESERVED_NAMES``); other ``FLY_`` names, such as ``FLY_API_TOKEN``, are
allowed, as on Fly. Values are UTF-8 text without NUL bytes (an environment
cannot hold one), at most ``MAX_VALUE_BYTES`` each, and an app's values
together at most ``MAX_TOTAL_BYTES`` (the kernel caps a process's environment).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ferry.errors import ValidationError

__all__ = [
    "MAX_NAME_CHARS",
    "MAX_SECRETS_PER_APP",
    "MAX_TOTAL_BYTES",
    "MAX_VALUE_BYTES",
    "RESERVED_NAMES",
    "RESERVED_PREFIXES",
    "check_secret_name",
    "check_secret_value",
    "check_total",
    "parse_assignments",
    "parse_import",
]

MAX_NAME_CHARS = 128
MAX_VALUE_BYTES = 64 * 1024
MAX_TOTAL_BYTES = 1024 * 1024
MAX_SECRETS_PER_APP = 500
RESERVED_PREFIXES = ("FERRY_",)
#: Set by the platform on every machine (``ferry.agent.runner``): a secret may not lie
#: about the machine it runs on.
RESERVED_NAMES = frozenset(
    {
        "FLY_APP_NAME",
        "FLY_MACHINE_ID",
        "FLY_ALLOC_ID",
        "FLY_REGION",
        "FLY_PRIVATE_IP",
        "FLY_MACHINE_VERSION",
        "FLY_IMAGE_REF",
        "FLY_PROCESS_GROUP",
        "FLY_VM_MEMORY_MB",
        "FLY_HOST_ID",
        "FLY_PUBLIC_IP",
    }
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_HINT = (
    "a secret's name is an environment variable name: letters, digits and _, not first a digit"
)


def check_secret_name(name: str) -> str:
    """``name`` if it may name a secret; else ``ValidationError`` saying why."""
    shown = name if len(name) <= MAX_NAME_CHARS and name.isprintable() else name[:40] + "…"
    if not name:
        raise ValidationError("a secret needs a name", hint="write NAME=VALUE")
    if len(name) > MAX_NAME_CHARS:
        raise ValidationError(
            f"secret name {shown!r} is longer than {MAX_NAME_CHARS} characters", hint=_NAME_HINT
        )
    if _NAME.fullmatch(name) is None:
        raise ValidationError(
            f"secret name {shown!r} is not a valid environment variable name", hint=_NAME_HINT
        )
    if name in RESERVED_NAMES or name.upper().startswith(RESERVED_PREFIXES):
        raise ValidationError(
            f"secret name {name!r} is reserved: the platform sets it on every machine",
            hint="choose another name (FERRY_* and the FLY_* variables Ferry sets are reserved)",
        )
    return name


def check_secret_value(name: str, value: str) -> str:
    """``value`` if secret ``name`` may hold it; else ``ValidationError`` naming ``name``
    (never showing the value)."""
    if "\0" in value:
        raise ValidationError(
            f"the value of secret {name} contains a NUL byte, which an environment cannot hold",
            hint="encode binary values, e.g. as base64",
        )
    size = len(value.encode())
    if size > MAX_VALUE_BYTES:
        raise ValidationError(
            f"the value of secret {name} is {size} bytes; the limit is {MAX_VALUE_BYTES}",
            hint="store large data elsewhere (a volume, an object store) and keep only its "
            "credentials in a secret",
        )
    return value


def check_total(app_name: str, sizes: Mapping[str, int]) -> None:
    """Refuse an app whose secrets (name -> value bytes), once changed, exceed the limits."""
    if len(sizes) > MAX_SECRETS_PER_APP:
        raise ValidationError(
            f"app {app_name} would have {len(sizes)} secrets; the limit is {MAX_SECRETS_PER_APP}",
            hint="unset secrets it no longer needs",
        )
    total = sum(len(name) + 2 + size for name, size in sizes.items())
    if total > MAX_TOTAL_BYTES:
        raise ValidationError(
            f"app {app_name}'s secrets would take {total} bytes of environment; "
            f"the limit is {MAX_TOTAL_BYTES}",
            hint="unset secrets it no longer needs, or keep large values elsewhere",
        )


def parse_assignments(arguments: Iterable[str]) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}`` (split at the first ``=``).

    The last of repeated names wins. ``ValidationError`` names the argument's
    position for one without ``=``, and the name for an invalid name or value.
    """
    found: dict[str, str] = {}
    for position, argument in enumerate(arguments, start=1):
        name, sep, value = argument.partition("=")
        if not sep:
            raise ValidationError(
                f"argument {position} is not NAME=VALUE",
                hint="write each secret as NAME=VALUE, e.g. DATABASE_URL=postgres://…",
            )
        found[check_secret_name(name.strip())] = check_secret_value(name.strip(), value)
    return found


def parse_import(text: str) -> dict[str, str]:
    """Secrets from ``fly secrets import``'s stdin format.

    One ``NAME=VALUE`` per line; blank lines and lines starting with ``#`` are
    skipped; a value wrapped in one pair of ``"`` or ``'`` loses them (no
    escapes are read); ``NAME=\"\"\"`` starts a value that runs verbatim over
    several lines up to one ending in ``\"\"\"``. Everything else after ``=`` is
    the value, ``#`` included. ``ValidationError`` names the line number.
    """
    found: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        number = index + 1
        index += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        name = name.strip()
        if not sep:
            raise ValidationError(
                f"line {number} of the input is not NAME=VALUE",
                hint='write one NAME=VALUE per line; a multi-line value goes in """…"""',
            )
        check_secret_name(name)
        if value.startswith('"""'):
            rest = value[3:]
            if rest.endswith('"""'):
                value = rest[:-3]
            else:
                parts = [rest] if rest else []
                while True:
                    if index >= len(lines):
                        raise ValidationError(
                            f'the value of {name} (line {number}) has no closing """',
                            hint='end a multi-line value with a line ending in """',
                        )
                    following = lines[index]
                    index += 1
                    if following.endswith('"""'):
                        parts.append(following[:-3])
                        break
                    parts.append(following)
                value = "\n".join(parts)
        elif len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        found[name] = check_secret_value(name, value)
    return found
