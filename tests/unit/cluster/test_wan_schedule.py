"""The delay line's pure decisions: classification by region and due times."""

from __future__ import annotations

import ipaddress
import random

import pytest

from ferry.cluster.wan import wan_config
from ferry.cluster.wan_schedule import AddressClassifier, DelayLine, PairDelay, WanConfig
from ferry.errors import ConfigError, ValidationError
from ferry.net.latency import LatencyMatrix
from ferry.net.plan import plan_cluster

REGIONS = {"ams": ("10.77.16.0/20", "fd00:16::/64"), "sin": ("10.77.32.0/20",)}
CONFIG = WanConfig(
    REGIONS, {("ams", "sin"): PairDelay(84.5), ("sin", "ams"): PairDelay(84.5)}, seed=None
)


def ipv4(src: str, dst: str, payload: bytes = b"") -> bytes:
    header = bytearray(20)
    header[0] = 0x45
    header[12:16] = ipaddress.IPv4Address(src).packed
    header[16:20] = ipaddress.IPv4Address(dst).packed
    return bytes(header) + payload


def ipv6(src: str, dst: str) -> bytes:
    header = bytearray(40)
    header[0] = 0x60
    header[8:24] = ipaddress.IPv6Address(src).packed
    header[24:40] = ipaddress.IPv6Address(dst).packed
    return bytes(header)


def test_classifier_finds_regions_for_ipv4_and_ipv6() -> None:
    classifier = AddressClassifier(REGIONS)
    ams, sin = classifier.codes.index("ams"), classifier.codes.index("sin")
    assert classifier.classify(ipv4("10.77.17.5", "10.77.32.1")) == (ams, sin)
    assert classifier.classify(ipv6("fd00:16::5", "fd00:16::9")) == (ams, ams)


def test_unknown_addresses_and_garbage_classify_as_no_region() -> None:
    classifier = AddressClassifier(REGIONS)
    assert classifier.classify(ipv4("10.77.0.1", "10.77.32.1"))[0] == -1  # the root link
    assert classifier.classify(ipv4("10.77.16.1", "10.77.250.1"))[1] == -1  # an edge address
    assert classifier.classify(b"") == (-1, -1)
    assert classifier.classify(b"\x45\x00") == (-1, -1)
    assert classifier.classify(b"\x60" + bytes(20)) == (-1, -1)


def test_longest_prefix_wins_when_aggregates_nest() -> None:
    classifier = AddressClassifier({"big": ("10.0.0.0/8",), "small": ("10.1.0.0/16",)})
    src, dst = classifier.classify(ipv4("10.2.0.1", "10.1.0.1"))
    assert (classifier.codes[src], classifier.codes[dst]) == ("big", "small")


def test_packets_between_regions_leave_after_the_one_way_delay() -> None:
    line = DelayLine(CONFIG)
    packet = ipv4("10.77.16.1", "10.77.32.1", b"hello")
    assert line.admit(packet, now=10.0) is False
    assert line.next_due() == pytest.approx(10.0845)
    assert line.release(10.084) == []
    assert line.release(10.0845) == [packet]
    assert len(line) == 0 and line.next_due() is None


def test_packets_that_stay_in_a_region_or_touch_no_region_pass_at_once() -> None:
    line = DelayLine(CONFIG)
    assert line.admit(ipv4("10.77.16.1", "10.77.17.9"), now=0.0)  # inside ams
    assert line.admit(ipv4("10.77.16.1", "10.77.0.1"), now=0.0)  # to the root namespace
    assert line.admit(ipv4("10.77.16.1", "10.77.250.1"), now=0.0)  # the edge address
    assert line.admit(b"\x00junk", now=0.0)
    assert len(line) == 0
    assert line.stats.passed == 4


def test_release_returns_packets_in_due_order_across_pairs() -> None:
    config = WanConfig(
        {"ams": ("10.0.1.0/24",), "fra": ("10.0.2.0/24",), "sin": ("10.0.3.0/24",)},
        {("ams", "sin"): PairDelay(80), ("ams", "fra"): PairDelay(5)},
    )
    line = DelayLine(config)
    far, near = ipv4("10.0.1.1", "10.0.3.1"), ipv4("10.0.1.1", "10.0.2.1")
    line.admit(far, now=0.0)
    line.admit(near, now=0.001)
    assert line.next_due() == pytest.approx(0.006)
    assert line.release(1.0) == [near, far]


def test_jitter_spreads_delays_within_its_bounds() -> None:
    jittery = WanConfig(REGIONS, {("ams", "sin"): PairDelay(50, jitter_ms=20)})
    line = DelayLine(jittery, rng=random.Random(1))
    delays = []
    for second in range(300):
        line.admit(ipv4("10.77.16.1", "10.77.32.1"), now=float(second))
        due = line.next_due()
        assert due is not None
        delays.append(due - second)
        line.release(due)
    assert 0.030 <= min(delays) < 0.033
    assert 0.067 < max(delays) <= 0.070
    assert sum(delays) / len(delays) == pytest.approx(0.050, abs=0.002)


def test_jitter_never_reorders_packets_of_one_pair() -> None:
    jittery = WanConfig(REGIONS, {("ams", "sin"): PairDelay(50, jitter_ms=20)})
    line = DelayLine(jittery, rng=random.Random(1))
    packets = [ipv4("10.77.16.1", "10.77.32.1", i.to_bytes(2, "big")) for i in range(500)]
    for i, packet in enumerate(packets):
        line.admit(packet, now=i * 0.0001)
    assert line.release(10.0) == packets


def test_a_seed_in_the_config_makes_jitter_repeatable() -> None:
    seeded = WanConfig(REGIONS, {("ams", "sin"): PairDelay(50, jitter_ms=20)}, seed=42)
    first, second = DelayLine(seeded), DelayLine(seeded)
    packet = ipv4("10.77.16.1", "10.77.32.1")
    first.admit(packet, now=0.0)
    second.admit(packet, now=0.0)
    assert first.next_due() == second.next_due()


def test_config_from_a_plan_has_every_ordered_pair_and_round_trips_as_json() -> None:
    plan = plan_cluster("fyab12", 77, ["ams", "iad", "sin"], 1)
    config = wan_config(plan, LatencyMatrix.default())
    assert config.regions["sin"] == ("10.77.48.0/20",)
    assert config.delays[("iad", "sin")] == PairDelay(112.0, 0.0)
    assert len(config.delays) == 6
    assert WanConfig.from_json(config.to_json()) == config


def test_config_for_a_region_without_rtt_fails_before_anything_is_built() -> None:
    plan = plan_cluster("fyab12", 77, ["ams", "xyz"], 1)
    with pytest.raises(ValidationError, match="ams and xyz"):
        wan_config(plan, LatencyMatrix.default())


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("not json", "Expecting value"),
        ('{"version": 9}', "version must be 1"),
        ('{"version": 1, "regions": {"ams": "10.0.0.300/24"}, "delays": []}', "10.0.0.300"),
        (
            '{"version": 1, "regions": {}, "delays": [{"from": "a", "to": "b", "one_way_ms": -1}]}',
            "negative delay for a->b",
        ),
    ],
)
def test_a_bad_config_file_is_a_config_error_naming_the_file(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as caught:
        WanConfig.from_json(text, source="/run/wan.json")
    assert "/run/wan.json" in str(caught.value)


def test_a_full_delay_line_drops_new_packets_like_a_full_router_queue() -> None:
    line = DelayLine(CONFIG, max_in_flight=2)
    packets = [ipv4("10.77.16.1", "10.77.32.1", bytes([i])) for i in range(3)]
    assert [line.admit(p, now=0.0) for p in packets] == [False, False, False]
    assert line.stats.overflowed == 1
    assert line.release(1.0) == packets[:2]
    assert line.admit(ipv4("10.77.16.1", "10.77.17.1"), now=1.0)  # undelayed traffic still flows
