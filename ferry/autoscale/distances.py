"""How far regions are from each other, for "the nearest region that …" decisions.

``RegionDistances`` is pure data: round-trip times in ms between pairs of
region codes. Without figures (no ``--latency`` file) it falls back to
alphabetical order and says so in ``basis``. ``load_latency_file`` and
``write_latency_file`` are the only I/O here; the file is JSON::

    {"rtt_ms": {"ams-iad": 84, "ams-sin": 169, "iad-sin": 224}}

(the bare ``{"ams-iad": 84, ...}`` object is accepted too).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ferry.errors import ConfigError

__all__ = ["RegionDistances", "load_latency_file", "write_latency_file"]

Pair = tuple[str, str]


def _key(a: str, b: str) -> Pair:
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class RegionDistances:
    """Symmetric RTTs between regions; unknown pairs sort after known ones, alphabetically."""

    rtt: Mapping[Pair, float] = field(default_factory=dict)

    @classmethod
    def from_pairs(cls, pairs: Mapping[Pair, float] | Mapping[str, float]) -> RegionDistances:
        """From ``{("ams", "iad"): 84}`` or ``{"ams-iad": 84}``; raises ``ValueError`` if bad."""
        cells: dict[Pair, float] = {}
        for raw, value in pairs.items():
            if isinstance(raw, str):
                a, sep, b = raw.partition("-")
                if not sep or not a or not b:
                    raise ValueError(f"pair {raw!r} is not written like 'ams-iad'")
            else:
                a, b = raw
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"RTT of {a}-{b} must be a number of ms >= 0, got {value!r}")
            cells[_key(a, b)] = float(value)
        return cls(rtt=cells)

    @property
    def known(self) -> bool:
        """Whether any RTT figure is known (else every order is alphabetical)."""
        return bool(self.rtt)

    @property
    def basis(self) -> str:
        return "by round-trip time" if self.known else "alphabetically (no latency figures)"

    def rtt_ms(self, a: str, b: str) -> float:
        """The RTT between ``a`` and ``b``: 0 for the same region, ``inf`` when unknown."""
        if a == b:
            return 0.0
        return self.rtt.get(_key(a, b), math.inf)

    def by_distance(self, origin: str, candidates: Iterable[str]) -> list[str]:
        """``candidates`` nearest first (ties and unknown figures: alphabetical)."""
        return sorted(set(candidates), key=lambda region: (self.rtt_ms(origin, region), region))

    def nearest(self, origin: str, candidates: Iterable[str]) -> str | None:
        """The candidate nearest to ``origin``, or ``None`` when there is none."""
        ordered = self.by_distance(origin, candidates)
        return ordered[0] if ordered else None


def load_latency_file(path: Path) -> RegionDistances:
    """Read a latency JSON file (see the module docstring). Blocking.

    Raises ``ConfigError`` naming the file when it is missing, not JSON or malformed.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such latency file", hint='write {"rtt_ms": {"ams-iad": 84}} there'
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the latency file: {exc}") from None
    cells = data.get("rtt_ms", data) if isinstance(data, dict) else None
    if not isinstance(cells, dict):
        raise ConfigError(
            f"{path}: a latency file must hold a JSON object of region pairs",
            hint='write {"rtt_ms": {"ams-iad": 84}}',
        )
    try:
        return RegionDistances.from_pairs(cells)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}", hint='write {"rtt_ms": {"ams-iad": 84}}') from None


def write_latency_file(path: Path, rtt_ms: Mapping[Pair, float]) -> None:
    """Write ``rtt_ms`` (e.g. ``LatencyMatrix.median``) as ``load_latency_file`` reads it."""
    cells = {f"{a}-{b}": value for (a, b), value in sorted(rtt_ms.items())}
    path.write_text(json.dumps({"rtt_ms": cells}, indent=1) + "\n", encoding="utf-8")
