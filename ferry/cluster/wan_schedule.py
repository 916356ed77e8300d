"""The WAN delay line's decisions: which regions a packet joins, and when it leaves.

Pure (the clock is passed in, randomness is an injected ``random.Random``);
the forwarder (``ferry.cluster.wan_forwarder``) wraps it around a TUN device.

- ``WanConfig``: region -> CIDRs, and each ordered pair's one-way delay and
  jitter; read from and written to the forwarder's JSON config file.
- ``AddressClassifier``: a packet's source and destination address -> region
  indexes, by longest prefix, for IPv4 (header bytes 12-19) and IPv6 (8-39).
- ``DelayLine``: admits packets with ``now`` and releases them when due. A
  packet between two known, different regions is due ``now + one_way ± jitter``,
  but never before an earlier packet of the same (source, destination) pair:
  order within a pair is kept even with jitter. Anything else (same region,
  an address outside every region such as the root link or the edge address,
  a packet too short to parse) passes at once.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ferry.errors import ConfigError
from ferry.net.latency import LatencyMatrix

__all__ = ["AddressClassifier", "DelayLine", "PairDelay", "WanConfig"]

CONFIG_VERSION = 1


@dataclass(frozen=True)
class PairDelay:
    """One direction of a region pair: base delay and uniform jitter half-width, in ms."""

    one_way_ms: float
    jitter_ms: float = 0.0


@dataclass(frozen=True)
class WanConfig:
    """What the forwarder needs: where each region's addresses are, and the delays."""

    regions: Mapping[str, tuple[str, ...]]
    delays: Mapping[tuple[str, str], PairDelay]
    seed: int | None = None

    @classmethod
    def from_matrix(
        cls,
        regions: Mapping[str, Sequence[str]],
        matrix: LatencyMatrix,
        *,
        seed: int | None = None,
    ) -> WanConfig:
        """Delays of every ordered pair of ``regions`` (region -> CIDRs) from ``matrix``.

        Raises ``ValidationError`` (from the matrix) when a pair has no RTT.
        """
        codes = sorted(regions)
        matrix.require(codes)
        delays = {
            (a, b): PairDelay(matrix.one_way_ms(a, b), matrix.jitter_ms(a, b))
            for a in codes
            for b in codes
            if a != b
        }
        return cls({c: tuple(regions[c]) for c in codes}, delays, seed)

    def to_json(self) -> str:
        body = {
            "version": CONFIG_VERSION,
            "regions": {code: list(cidrs) for code, cidrs in self.regions.items()},
            "delays": [
                {"from": a, "to": b, "one_way_ms": d.one_way_ms, "jitter_ms": d.jitter_ms}
                for (a, b), d in sorted(self.delays.items())
            ],
            "seed": self.seed,
        }
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "WAN config") -> WanConfig:
        """Parse ``to_json``'s output. Raises ``ConfigError`` naming ``source`` and the problem."""
        try:
            body = json.loads(text)
            if body.get("version") != CONFIG_VERSION:
                raise ValueError(f"version must be {CONFIG_VERSION}, got {body.get('version')!r}")
            regions: dict[str, tuple[str, ...]] = {}
            for code, cidrs in body["regions"].items():
                listed = (cidrs,) if isinstance(cidrs, str) else tuple(cidrs)
                for cidr in listed:
                    ipaddress.ip_network(cidr)
                regions[str(code)] = listed
            delays: dict[tuple[str, str], PairDelay] = {}
            for row in body["delays"]:
                pair = (str(row["from"]), str(row["to"]))
                delay = PairDelay(float(row["one_way_ms"]), float(row.get("jitter_ms", 0.0)))
                if delay.one_way_ms < 0 or delay.jitter_ms < 0:
                    raise ValueError(f"negative delay for {pair[0]}->{pair[1]}")
                delays[pair] = delay
            seed = body.get("seed")
            return cls(regions, delays, None if seed is None else int(seed))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{source} is invalid: {exc}",
                hint="it is written by ferry.cluster.wan.setup_wan; rebuild the cluster's WAN",
            ) from exc


class AddressClassifier:
    """Maps a packet's addresses to region indexes (position in ``codes``), or -1."""

    def __init__(self, regions: Mapping[str, Sequence[str]]) -> None:
        self.codes: tuple[str, ...] = tuple(regions)
        by_family: dict[int, dict[int, dict[int, int]]] = {4: {}, 6: {}}
        for index, code in enumerate(self.codes):
            for cidr in regions[code]:
                net = ipaddress.ip_network(cidr, strict=False)
                shift = net.max_prefixlen - net.prefixlen
                by_family[net.version].setdefault(shift, {})[int(net.network_address) >> shift] = (
                    index
                )
        # Longest prefix (smallest shift) first; with one prefix length it is one dict lookup.
        self._v4 = sorted(by_family[4].items())
        self._v6 = sorted(by_family[6].items())

    def region_index(self, address: int, version: int) -> int:
        for shift, table in self._v4 if version == 4 else self._v6:
            index = table.get(address >> shift)
            if index is not None:
                return index
        return -1

    def classify(self, packet: bytes) -> tuple[int, int]:
        """(source, destination) region indexes; -1 for an address outside every region."""
        version = packet[0] >> 4 if packet else 0
        if version == 4 and len(packet) >= 20:
            src = int.from_bytes(packet[12:16], "big")
            dst = int.from_bytes(packet[16:20], "big")
        elif version == 6 and len(packet) >= 40:
            src = int.from_bytes(packet[8:24], "big")
            dst = int.from_bytes(packet[24:40], "big")
        else:
            return -1, -1
        return self.region_index(src, version), self.region_index(dst, version)


# Packets held at once before new ones are dropped (a router's full queue):
# ~1.5 Gbit/s for 1 s at 1500 bytes, far more than one core can forward.
MAX_IN_FLIGHT = 131072


@dataclass
class DelayLineStats:
    delayed: int = 0
    passed: int = 0
    released: int = 0
    overflowed: int = 0


@dataclass
class DelayLine:
    """A heap of packets keyed by due time (seconds on the caller's monotonic clock).

    Not thread-safe; one event loop owns it. ``admit`` and ``release`` are
    O(log n) in the number of packets in flight.
    """

    config: WanConfig
    rng: random.Random = field(default_factory=random.Random)
    stats: DelayLineStats = field(default_factory=DelayLineStats)
    max_in_flight: int = MAX_IN_FLIGHT

    def __post_init__(self) -> None:
        self.classifier = AddressClassifier(self.config.regions)
        codes = self.classifier.codes
        self._width = len(codes)
        # Flat table indexed by src * width + dst: (base seconds, jitter seconds).
        self._delays: list[tuple[float, float]] = [(0.0, 0.0)] * (self._width * self._width)
        for (a, b), delay in self.config.delays.items():
            if a in codes and b in codes:
                flow = codes.index(a) * self._width + codes.index(b)
                self._delays[flow] = (delay.one_way_ms / 1000, delay.jitter_ms / 1000)
        self._last_due = [0.0] * len(self._delays)
        self._heap: list[tuple[float, int, bytes]] = []
        self._sequence = itertools.count()
        if self.config.seed is not None:
            self.rng.seed(self.config.seed)

    def admit(self, packet: bytes, now: float) -> bool:
        """Queue ``packet`` if its pair has a delay; return True if it should go out now.

        A delayed packet that finds ``max_in_flight`` packets queued is dropped
        (False, counted in ``stats.overflowed``), as a router with a full queue would.
        """
        src, dst = self.classifier.classify(packet)
        if src < 0 or dst < 0 or src == dst:
            self.stats.passed += 1
            return True
        flow = src * self._width + dst
        base, jitter = self._delays[flow]
        if base <= 0 and jitter <= 0:
            self.stats.passed += 1
            return True
        if jitter > 0:
            base += self.rng.uniform(-jitter, jitter)
        if len(self._heap) >= self.max_in_flight:
            self.stats.overflowed += 1
            return False
        due = max(now + base, self._last_due[flow])
        self._last_due[flow] = due
        heapq.heappush(self._heap, (due, next(self._sequence), packet))
        self.stats.delayed += 1
        return False

    def release(self, now: float) -> list[bytes]:
        """Remove and return, in due order, every packet due at or before ``now``."""
        heap = self._heap
        out: list[bytes] = []
        while heap and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[2])
        self.stats.released += len(out)
        return out

    def next_due(self) -> float | None:
        """Due time of the earliest queued packet, or None when nothing is in flight."""
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)
