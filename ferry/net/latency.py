"""Round-trip times between regions: the WAN the embedded cluster emulates.

Pure data and arithmetic, no I/O. The defaults are the median (P50) and P95
round-trip times of ``reference/region-latency.md`` (Azure backbone, 30 days
ending 30 Jul 2026), for Fly's twelve region codes. ``LatencyMatrix`` answers
what the WAN emulator and the edge proxy need:

- ``rtt_ms(a, b)`` / ``one_way_ms(a, b)``: the base delay (0 within a region);
- ``jitter_ms(a, b)``: the half-width of the uniform, zero-mean jitter added to
  each packet's one-way delay (0 by default, so tests are exact);
- ``rtt_from(region)``: every known region's RTT from one region.

Jitter modes: ``"none"`` (default), a fixed number of ms for every pair, or
``"spread"``, which sizes each pair's jitter so the emulated RTT's P95 lands on
the P95 table (for pairs without a P95 figure: P50 + 3%, the reference's median
gap). The sum of two uniform ±j delays is triangular; its P95 is
``SPREAD_P95_FACTOR * j`` above the median, so ``j = (P95 - P50) / factor``.
Zero-mean jitter keeps the median RTT on the matrix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from ferry.errors import ValidationError

__all__ = [
    "DEFAULT_REGIONS",
    "SPREAD_P95_FACTOR",
    "JitterMode",
    "LatencyMatrix",
    "parse_pair",
]

Pair = tuple[str, str]
JitterMode = Literal["none", "spread"] | float
# Cells keyed by ("ams", "iad") or "ams-iad".
Cells = Mapping[Pair, float] | Mapping[str, float] | Mapping[Pair | str, float]

DEFAULT_REGIONS = (
    "ams",
    "fra",
    "lhr",
    "iad",
    "ord",
    "sjc",
    "gru",
    "sin",
    "nrt",
    "syd",
    "jnb",
    "bom",
)

# 95th percentile of the sum of two independent U(-j, j), in units of j: 2 - sqrt(0.4).
SPREAD_P95_FACTOR = 2.0 - math.sqrt(0.4)
# Where users configure extra pairs; named in the error for an unknown pair.
RTT_SETTING = "wan_rtt_ms"
# Relative P95 - P50 gap for pairs the P95 table lacks (reference §3: median +3%).
DEFAULT_SPREAD_RATIO = 0.03

# Upper triangle of the median RTT matrix, row by row (reference §1).
_MEDIAN_ROWS = """
ams  11  11  84 101 146 185 169 234 265 166 140
fra  17  94 110 152 197 166 236 267 166 140
lhr  78  97 140 181 167 230 261 164 141
iad  20  68 118 224 162 202 220 200
ord  52 138 210 148 187 234 217
sjc 169 170 108 140 273 218
gru 331 262 295 321 304
sin  72  95 177  53
nrt 104 249 122
syd 328 145
jnb 131
"""

# Lower triangle of the P95 RTT matrix, row by row (reference §1, second table).
_P95_ROWS = """
fra  14
lhr  13  20
iad  90  97  80
ord 106 115 101  25
sjc 152 158 144  73  54
gru 190 200 184 120 142 171
sin 182 179 183 229 214 172 337
nrt 241 248 236 165 151 110 270  74
syd 282 291 277 207 190 142 298  98 105
jnb 171 173 169 226 241 279 327 201 255 348
bom 153 151 151 216 233 224 320  59 129 152 134
"""


def _key(a: str, b: str) -> Pair:
    return (a, b) if a <= b else (b, a)


def _upper_triangle(text: str) -> dict[Pair, float]:
    cells: dict[Pair, float] = {}
    for row in text.strip().splitlines():
        code, *values = row.split()
        start = DEFAULT_REGIONS.index(code) + 1
        for other, value in zip(DEFAULT_REGIONS[start:], values, strict=True):
            cells[_key(code, other)] = float(value)
    return cells


def _lower_triangle(text: str) -> dict[Pair, float]:
    cells: dict[Pair, float] = {}
    for row in text.strip().splitlines():
        code, *values = row.split()
        for other, value in zip(DEFAULT_REGIONS, values, strict=False):
            cells[_key(code, other)] = float(value)
    return cells


DEFAULT_MEDIAN_RTT: Mapping[Pair, float] = MappingProxyType(_upper_triangle(_MEDIAN_ROWS))
DEFAULT_P95_RTT: Mapping[Pair, float] = MappingProxyType(_lower_triangle(_P95_ROWS))


def parse_pair(text: str) -> Pair:
    """``"ams-iad"`` (or ``"ams:iad"``, ``"ams iad"``) -> ``("ams", "iad")``.

    Raises ``ValidationError`` naming the text when it is not two region codes.
    """
    parts = text.replace(":", " ").replace("-", " ").split()
    if len(parts) != 2 or not all(p.isalnum() for p in parts):
        raise ValidationError(
            f"invalid region pair {text!r}", hint="write a pair as two codes, like 'ams-iad'"
        )
    return parts[0].lower(), parts[1].lower()


def _check_ms(what: str, pair: Pair, value: float) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValidationError(
            f"{what} for {pair[0]}-{pair[1]} must be a number of milliseconds >= 0, got {value!r}"
        )
    return float(value)


@dataclass(frozen=True)
class LatencyMatrix:
    """Symmetric RTTs between regions, with optional per-packet jitter.

    Immutable; ``with_overrides`` returns a new matrix. Lookups of a pair the
    matrix does not know raise ``ValidationError`` naming the pair and how to
    configure it.
    """

    median: Mapping[Pair, float] = field(default_factory=lambda: DEFAULT_MEDIAN_RTT)
    p95: Mapping[Pair, float] = field(default_factory=lambda: DEFAULT_P95_RTT)
    jitter: JitterMode = "none"
    jitter_overrides: Mapping[Pair, float] = field(default_factory=dict)

    @classmethod
    def default(cls, jitter: JitterMode = "none") -> LatencyMatrix:
        """The reference matrix of twelve regions. ``jitter``: "none", "spread" or ms."""
        matrix = cls()
        return matrix.with_overrides(jitter=jitter) if jitter != "none" else matrix

    @property
    def regions(self) -> tuple[str, ...]:
        """Every region code some pair mentions, sorted."""
        return tuple(sorted({code for pair in self.median for code in pair}))

    def rtt_ms(self, a: str, b: str) -> float:
        """Median round-trip time between ``a`` and ``b``; 0 when ``a == b``."""
        if a == b:
            return 0.0
        try:
            return self.median[_key(a, b)]
        except KeyError:
            raise self._unknown(a, b) from None

    def one_way_ms(self, a: str, b: str) -> float:
        """Base one-way delay from ``a`` to ``b``: half the RTT (paths are symmetric)."""
        return self.rtt_ms(a, b) / 2

    def jitter_ms(self, a: str, b: str) -> float:
        """Half-width of the uniform jitter on each one-way packet delay between ``a`` and ``b``.

        0 within a region, in mode "none", and never more than the one-way delay.
        """
        rtt = self.rtt_ms(a, b)
        if a == b:
            return 0.0
        key = _key(a, b)
        if key in self.jitter_overrides:
            value = self.jitter_overrides[key]
        elif self.jitter == "none":
            value = 0.0
        elif self.jitter == "spread":
            p95 = self.p95.get(key, rtt * (1 + DEFAULT_SPREAD_RATIO))
            value = max(0.0, p95 - rtt) / SPREAD_P95_FACTOR
        else:
            value = float(self.jitter)
        return min(value, rtt / 2)

    def rtt_from(self, region: str) -> dict[str, float]:
        """RTT from ``region`` to every region it has a figure for (itself at 0)."""
        result = {region: 0.0}
        for a, b in self.median:
            if region in (a, b):
                other = b if a == region else a
                result[other] = self.median[(a, b)]
        return dict(sorted(result.items()))

    def require(self, regions: Iterable[str]) -> None:
        """Raise ``ValidationError`` unless every pair of ``regions`` has an RTT."""
        codes = sorted(set(regions))
        for i, a in enumerate(codes):
            for b in codes[i + 1 :]:
                self.rtt_ms(a, b)

    def with_overrides(
        self,
        rtt: Cells | None = None,
        *,
        jitter: JitterMode | None = None,
        pair_jitter: Cells | None = None,
        p95: Cells | None = None,
    ) -> LatencyMatrix:
        """A new matrix with cells replaced or added (new region codes come with them).

        Pairs are tuples or strings like ``"ams-xyz"``; values are ms >= 0.
        ``jitter`` replaces the mode; ``pair_jitter`` pins one pair's jitter
        half-width; ``p95`` adds P95 figures for the "spread" mode. Pure;
        raises ``ValidationError`` on a malformed pair or value.
        """
        median = dict(self.median)
        median.update(self._cells("round-trip time", rtt))
        p95_cells = dict(self.p95)
        p95_cells.update(self._cells("P95 round-trip time", p95))
        jitter_cells = dict(self.jitter_overrides)
        jitter_cells.update(self._cells("jitter", pair_jitter))
        mode = self.jitter if jitter is None else jitter
        if isinstance(mode, str):
            if mode not in ("none", "spread"):
                raise ValidationError(
                    f"unknown jitter mode {mode!r}",
                    hint="use 'none', 'spread' or a number of milliseconds",
                )
        else:
            mode = _check_ms("jitter", ("every", "pair"), mode)
        return LatencyMatrix(
            median=MappingProxyType(median),
            p95=MappingProxyType(p95_cells),
            jitter=mode,
            jitter_overrides=MappingProxyType(jitter_cells),
        )

    @staticmethod
    def _cells(what: str, cells: Cells | None) -> dict[Pair, float]:
        parsed: dict[Pair, float] = {}
        for raw, value in (cells or {}).items():
            pair = parse_pair(raw) if isinstance(raw, str) else (raw[0], raw[1])
            if pair[0] == pair[1]:
                raise ValidationError(
                    f"{what} for {pair[0]}-{pair[1]}: a region is 0 ms from itself",
                    hint="give pairs of two different regions",
                )
            parsed[_key(*pair)] = _check_ms(what, pair, value)
        return parsed

    def _unknown(self, a: str, b: str) -> ValidationError:
        return ValidationError(
            f"no round-trip time is known between regions {a} and {b}",
            hint=(
                f'set it in the cluster settings\' {RTT_SETTING}, e.g. {{"{a}-{b}": 80}};'
                f" known regions: {', '.join(self.regions)}"
            ),
        )
