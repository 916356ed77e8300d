"""The Debian sources the Postgres image is built from: this machine's own apt sources.

``mmdebstrap`` is handed the entries of the machine's apt configuration
(``/etc/apt/sources.list``, ``sources.list.d/*.list`` and deb822
``*.sources``) for the image's suite and its ``-updates``/``-security``
companions, as one-line ``deb`` entries. So the image comes from the mirror
the machine already uses, and Ferry names none. Parsing is pure; ``read``
reads the files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ferry.errors import ValidationError

__all__ = ["from_deb822", "from_one_line", "read"]


def from_one_line(text: str, suite: str) -> list[str]:
    """``deb`` lines of a ``sources.list`` whose suite is ``suite`` or ``suite-*``."""
    found = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        words = line.split()
        if not words or words[0] != "deb":
            continue
        rest = words[1:]
        if rest and rest[0].startswith("["):  # options: [signed-by=… arch=…]
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if len(rest) >= 2 and _wanted(rest[1], suite):
            found.append(line)
    return found


def from_deb822(text: str, suite: str) -> list[str]:
    """The entries of a deb822 ``.sources`` file for ``suite``, as one-line ``deb`` lines."""
    found = []
    for stanza in _stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        signed_by = stanza.get("signed-by", "")
        options = f"[signed-by={signed_by}] " if signed_by.startswith("/") else ""
        components = stanza.get("components", "")
        for uri in stanza.get("uris", "").split():
            for name in stanza.get("suites", "").split():
                if _wanted(name, suite):
                    found.append(f"deb {options}{uri} {name} {components}".strip())
    return found


def read(suite: str, etc: Path = Path("/etc/apt")) -> tuple[str, ...]:
    """This machine's apt entries for ``suite``; ``ValidationError`` when there are none."""
    found: list[str] = []
    one_line = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in one_line:
        found += from_one_line(_text(path), suite)
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        found += from_deb822(_text(path), suite)
    if not found:
        raise ValidationError(
            f"no apt source for Debian {suite} is configured on this machine ({etc})",
            hint=f"the Postgres image is built from Debian {suite}'s packages with the "
            "machine's own apt sources: add a Debian mirror to /etc/apt/sources.list",
        )
    return tuple(dict.fromkeys(found))


def _wanted(name: str, suite: str) -> bool:
    return name == suite or name.startswith(f"{suite}-")


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _stanzas(text: str) -> Iterable[dict[str, str]]:
    stanza: dict[str, str] = {}
    key = ""
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza, key = {}, ""
        elif raw[0] in " \t" and key:
            stanza[key] += " " + raw.strip()
        elif ":" in raw:
            key, value = raw.split(":", 1)
            key = key.strip().lower()
            stanza[key] = value.strip()
