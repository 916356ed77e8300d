"""The default inter-region RTT matrix and its overrides."""

from __future__ import annotations

import random

import pytest

from ferry.errors import ValidationError
from ferry.net.latency import DEFAULT_REGIONS, SPREAD_P95_FACTOR, LatencyMatrix, parse_pair


def test_reference_cells_match_the_published_medians() -> None:
    matrix = LatencyMatrix.default()
    assert matrix.rtt_ms("ams", "iad") == 84
    assert matrix.rtt_ms("ams", "sin") == 169
    assert matrix.rtt_ms("iad", "sin") == 224
    assert matrix.rtt_ms("jnb", "bom") == 131
    assert matrix.one_way_ms("ams", "sin") == 84.5


def test_every_pair_of_the_twelve_regions_is_known_and_symmetric() -> None:
    matrix = LatencyMatrix.default()
    assert set(matrix.regions) == set(DEFAULT_REGIONS)
    for a in DEFAULT_REGIONS:
        for b in DEFAULT_REGIONS:
            assert matrix.rtt_ms(a, b) == matrix.rtt_ms(b, a)
            assert (matrix.rtt_ms(a, b) == 0) == (a == b)


def test_rtt_from_lists_every_region_with_itself_at_zero() -> None:
    from_ams = LatencyMatrix.default().rtt_from("ams")
    assert len(from_ams) == 12
    assert from_ams["ams"] == 0
    assert from_ams["sin"] == 169
    assert min((v, k) for k, v in from_ams.items() if k != "ams") == (11, "fra")


def test_jitter_is_zero_by_default_so_delays_are_exact() -> None:
    matrix = LatencyMatrix.default()
    assert all(matrix.jitter_ms("ams", b) == 0 for b in DEFAULT_REGIONS)


def test_spread_jitter_puts_the_p95_rtt_on_the_p95_table() -> None:
    matrix = LatencyMatrix.default(jitter="spread")
    jitter = matrix.jitter_ms("ams", "sin")
    assert jitter == pytest.approx((182 - 169) / SPREAD_P95_FACTOR)
    assert matrix.jitter_ms("ams", "ams") == 0
    rng = random.Random(7)
    one_way = matrix.one_way_ms("ams", "sin")
    rtts = sorted(
        2 * one_way + rng.uniform(-jitter, jitter) + rng.uniform(-jitter, jitter)
        for _ in range(20000)
    )
    assert rtts[len(rtts) // 2] == pytest.approx(169, abs=0.5)
    assert rtts[int(len(rtts) * 0.95)] == pytest.approx(182, abs=0.7)


def test_fixed_jitter_never_exceeds_the_one_way_delay() -> None:
    matrix = LatencyMatrix.default(jitter=20.0)
    assert matrix.jitter_ms("ams", "iad") == 20
    assert matrix.jitter_ms("ams", "fra") == 5.5  # half of 11 ms


def test_overrides_add_regions_and_replace_cells_without_touching_the_original() -> None:
    base = LatencyMatrix.default()
    cells: dict[tuple[str, str] | str, float] = {"ams-xyz": 30, ("xyz", "sin"): 150.5}
    custom = base.with_overrides(cells).with_overrides({"ams-iad": 90})
    assert custom.rtt_ms("xyz", "ams") == 30
    assert custom.rtt_ms("sin", "xyz") == 150.5
    assert custom.rtt_ms("iad", "ams") == 90
    assert base.rtt_ms("ams", "iad") == 84
    assert "xyz" in custom.regions and "xyz" not in base.regions
    assert custom.rtt_from("xyz") == {"ams": 30, "sin": 150.5, "xyz": 0}


def test_pair_jitter_override_wins_over_the_mode() -> None:
    matrix = LatencyMatrix.default(jitter="spread").with_overrides(pair_jitter={"sin-ams": 3})
    assert matrix.jitter_ms("ams", "sin") == 3
    assert matrix.jitter_ms("ams", "iad") > 0


def test_spread_for_a_pair_without_p95_uses_three_percent() -> None:
    matrix = LatencyMatrix.default(jitter="spread").with_overrides({"ams-xyz": 100})
    assert matrix.jitter_ms("ams", "xyz") == pytest.approx(3 / SPREAD_P95_FACTOR)


def test_unknown_pair_names_the_pair_and_how_to_configure_it() -> None:
    matrix = LatencyMatrix.default()
    with pytest.raises(ValidationError) as caught:
        matrix.rtt_ms("ams", "xyz")
    message = str(caught.value)
    assert "ams and xyz" in message
    assert "wan_rtt_ms" in message and '"ams-xyz"' in message
    with pytest.raises(ValidationError, match="ams and qqq"):
        matrix.require(["iad", "ams", "qqq"])


@pytest.mark.parametrize(
    ("cells", "needle"),
    [
        ({"ams-iad": -1}, "ams-iad must be a number of milliseconds >= 0"),
        ({"ams-iad": float("nan")}, "milliseconds"),
        ({"ams": 10}, "invalid region pair 'ams'"),
        ({"ams-ams": 10}, "0 ms from itself"),
    ],
)
def test_bad_overrides_are_rejected_with_the_cell_named(
    cells: dict[str, float], needle: str
) -> None:
    with pytest.raises(ValidationError, match=needle):
        LatencyMatrix.default().with_overrides(cells)


def test_bad_jitter_mode_is_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown jitter mode 'wild'"):
        LatencyMatrix.default().with_overrides(jitter="wild")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="milliseconds"):
        LatencyMatrix.default(jitter=-2.0)


def test_parse_pair_accepts_common_spellings() -> None:
    assert parse_pair("ams-iad") == ("ams", "iad")
    assert parse_pair("AMS:iad") == ("ams", "iad")
    assert parse_pair(" ams iad ") == ("ams", "iad")
