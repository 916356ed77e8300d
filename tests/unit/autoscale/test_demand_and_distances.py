"""Demand from cumulative edge counters, and the nearest-region order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ferry.autoscale import (
    EdgeAppSample,
    EdgeSample,
    MachineActivity,
    RegionDistances,
    load_latency_file,
    measure_demand,
    write_latency_file,
)
from ferry.errors import ConfigError


def edge(region: str, at: float, total: int, in_flight: int = 0, unserved: int = 0) -> EdgeSample:
    sample = EdgeAppSample(
        requests_total=total,
        unserved_total=unserved,
        in_flight=in_flight,
        machines={"m1": MachineActivity(in_flight, total)},
    )
    return EdgeSample(region, at, {"web": sample})


def test_rates_come_from_the_difference_between_two_reports() -> None:
    first, samples = measure_demand("web", [edge("ams", 100.0, 50)], {})
    assert first.regions["ams"].rate == 0.0  # nothing to compare with yet

    second, samples = measure_demand("web", [edge("ams", 110.0, 250, 7, 20)], samples)

    assert second.regions["ams"].rate == pytest.approx(20.0)
    assert second.regions["ams"].unserved_rate == pytest.approx(2.0)
    assert second.regions["ams"].concurrency == 7.0
    assert second.machines["m1"] == MachineActivity(7, 250)


def test_a_report_seen_twice_keeps_its_rate_and_a_restarted_proxy_gives_zero() -> None:
    _, samples = measure_demand("web", [edge("ams", 100.0, 50)], {})
    _, samples = measure_demand("web", [edge("ams", 110.0, 150)], samples)
    again, samples = measure_demand("web", [edge("ams", 110.0, 150)], samples)
    assert again.regions["ams"].rate == pytest.approx(10.0)

    restarted, _ = measure_demand("web", [edge("ams", 120.0, 3)], samples)
    assert restarted.regions["ams"].rate == 0.0


def test_machine_load_is_summed_over_edges_and_other_apps_are_ignored() -> None:
    other = EdgeSample("sin", 1.0, {"api": EdgeAppSample(requests_total=9)})
    found, _ = measure_demand("web", [edge("ams", 1.0, 5, 1), edge("iad", 1.0, 7, 2), other], {})

    assert found.machines["m1"] == MachineActivity(3, 12)
    assert sorted(found.regions) == ["ams", "iad"] and found.edges == 3


def test_nearest_region_by_rtt_and_alphabetical_without_figures() -> None:
    rtt = RegionDistances.from_pairs({"syd-sin": 95, "syd-ams": 234})
    assert rtt.by_distance("syd", ["ams", "sin", "iad"]) == ["sin", "ams", "iad"]
    assert RegionDistances().by_distance("syd", ["sin", "ams"]) == ["ams", "sin"]
    assert "alphabetically" in RegionDistances().basis


def test_latency_file_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "latency.json"
    write_latency_file(path, {("ams", "iad"): 84.0})
    assert load_latency_file(path).rtt_ms("iad", "ams") == 84.0

    path.write_text(json.dumps({"rtt_ms": {"amsiad": 3}}))
    with pytest.raises(ConfigError, match=r"latency\.json: pair .amsiad. is not written like"):
        load_latency_file(path)
    with pytest.raises(ConfigError, match="no such latency file"):
        load_latency_file(tmp_path / "missing.json")
