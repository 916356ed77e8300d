"""What the edges say about an app's demand, turned into per-region figures. Pure.

Edge proxies report cumulative counters (requests, unserved requests) and
instant gauges (requests in flight). ``measure_demand`` turns one snapshot of
every edge's latest report, plus the previous counter samples the caller keeps,
into an ``AppDemand``: per client region the request rate, the concurrency
(requests in flight) and the unserved rate; per machine its requests in flight
and its cumulative request count summed over every edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "AppDemand",
    "CounterSample",
    "EdgeAppSample",
    "EdgeSample",
    "MachineActivity",
    "RegionDemand",
    "measure_demand",
]


@dataclass(frozen=True)
class MachineActivity:
    """One machine's load as the edges see it: in flight now, requests since they started."""

    in_flight: int = 0
    requests_total: int = 0


@dataclass(frozen=True)
class EdgeAppSample:
    """One app's counters in one edge report."""

    requests_total: int = 0
    unserved_total: int = 0
    in_flight: int = 0
    machines: Mapping[str, MachineActivity] = field(default_factory=dict)


@dataclass(frozen=True)
class EdgeSample:
    """One edge's latest report; ``received_at`` is seconds on one monotonic-enough clock."""

    region: str
    received_at: float
    apps: Mapping[str, EdgeAppSample] = field(default_factory=dict)


@dataclass(frozen=True)
class CounterSample:
    """The counters of one edge for one app at one report, with the rates derived there."""

    received_at: float
    requests_total: int
    unserved_total: int
    rate: float = 0.0
    unserved_rate: float = 0.0


@dataclass(frozen=True)
class RegionDemand:
    """Demand from clients in one region: requests/s, requests in flight, unserved/s."""

    rate: float = 0.0
    concurrency: float = 0.0
    unserved_rate: float = 0.0


@dataclass(frozen=True)
class AppDemand:
    """An app's demand by client region and load by machine; ``edges`` = fresh reports seen."""

    regions: Mapping[str, RegionDemand] = field(default_factory=dict)
    machines: Mapping[str, MachineActivity] = field(default_factory=dict)
    edges: int = 0


def _rate(now: int, before: int, seconds: float) -> float:
    # A counter that went down means the proxy restarted: no rate for that interval.
    return max(0, now - before) / seconds if seconds > 0 else 0.0


def _sample(app: EdgeAppSample, at: float, previous: CounterSample | None) -> CounterSample:
    if previous is None:
        return CounterSample(at, app.requests_total, app.unserved_total)
    if at <= previous.received_at:
        return previous
    seconds = at - previous.received_at
    return CounterSample(
        received_at=at,
        requests_total=app.requests_total,
        unserved_total=app.unserved_total,
        rate=_rate(app.requests_total, previous.requests_total, seconds),
        unserved_rate=_rate(app.unserved_total, previous.unserved_total, seconds),
    )


def measure_demand(
    app: str, edges: Sequence[EdgeSample], previous: Mapping[str, CounterSample]
) -> tuple[AppDemand, dict[str, CounterSample]]:
    """The app's demand now, and the counter samples to pass in next time.

    ``previous`` maps edge region to the sample kept from the last call. A
    region's first report gives a rate of 0 (nothing to compare with); a
    report already seen keeps its rates. Edges whose report does not mention
    the app count as zero demand.
    """
    regions: dict[str, RegionDemand] = {}
    samples: dict[str, CounterSample] = {}
    in_flight: dict[str, int] = {}
    totals: dict[str, int] = {}
    for edge in edges:
        traffic = edge.apps.get(app)
        if traffic is None:
            continue
        sample = _sample(traffic, edge.received_at, previous.get(edge.region))
        samples[edge.region] = sample
        regions[edge.region] = RegionDemand(
            rate=sample.rate,
            concurrency=float(traffic.in_flight),
            unserved_rate=sample.unserved_rate,
        )
        for machine_id, load in traffic.machines.items():
            in_flight[machine_id] = in_flight.get(machine_id, 0) + load.in_flight
            totals[machine_id] = totals.get(machine_id, 0) + load.requests_total
    machines = {mid: MachineActivity(in_flight[mid], totals[mid]) for mid in sorted(in_flight)}
    return AppDemand(regions=regions, machines=machines, edges=len(edges)), samples
