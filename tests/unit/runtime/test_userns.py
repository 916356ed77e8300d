"""The table of machines' host uid ranges: distinct, kept, freed, shared between agents."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.errors import RuntimeFailure
from ferry.runtime.userns import (
    ID_RANGE_SIZE,
    MAX_SLOT,
    SLOT_STRIDE,
    IdRange,
    IdRangeAllocator,
    choose_slot,
    range_owner,
)


def test_each_owner_gets_its_own_range_and_keeps_it(tmp_path: Path) -> None:
    table = IdRangeAllocator(tmp_path / "ranges.json")

    first, second = table.acquire("m1"), table.acquire("m2")

    assert first == IdRange(100_000) and second == IdRange(200_000)
    assert table.acquire("m1") == first  # idempotent: a restart keeps the range
    assert first.host_id + first.size <= second.host_id  # never overlapping


def test_the_table_survives_a_restart_and_is_shared_by_agents_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "ranges.json"
    IdRangeAllocator(path).acquire("m1")

    other_agent = IdRangeAllocator(path)

    assert other_agent.acquire("m1") == IdRange(100_000)
    assert other_agent.acquire("m9") == IdRange(200_000)


def test_a_freed_range_is_reused_first(tmp_path: Path) -> None:
    table = IdRangeAllocator(tmp_path / "ranges.json")
    for owner in ("m1", "m2", "m3"):
        table.acquire(owner)

    table.release("m2")
    table.release("m2")  # idempotent

    assert "m2" not in table.held()
    assert table.acquire("m4") == IdRange(200_000)


def test_a_full_table_refuses_with_a_reason(tmp_path: Path) -> None:
    table = IdRangeAllocator(tmp_path / "ranges.json", limit=2)
    table.acquire("m1")
    table.acquire("m2")

    with pytest.raises(RuntimeFailure, match="no free uid range for machine m3: all 2"):
        table.acquire("m3")
    assert set(table.held()) == {"m1", "m2"}


def test_an_unreadable_table_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "ranges.json"
    path.write_text("{not json")

    with pytest.raises(RuntimeFailure, match="unreadable"):
        IdRangeAllocator(path).acquire("m1")
    assert path.read_text() == "{not json"


def test_slots_start_above_the_hosts_users_and_end_below_the_invalid_uid() -> None:
    assert choose_slot(set()) == 1
    assert choose_slot({1, 2, 4}) == 3
    assert choose_slot({1, 2}, limit=2) is None
    assert MAX_SLOT * SLOT_STRIDE + ID_RANGE_SIZE <= 2**32 - 1


def test_a_range_maps_ids_inside_to_the_host() -> None:
    id_range = IdRange(300_000)

    assert id_range.to_host(0) == 300_000 and id_range.to_host(65_535) == 365_535
    assert id_range.oci_mappings() == [{"containerID": 0, "hostID": 300_000, "size": 65_536}]
    assert id_range.proc_map() == "0 300000 65536\n"
    with pytest.raises(ValueError, match="outside the mapped range"):
        id_range.to_host(65_536)
    with pytest.raises(ValueError, match="not within the host's uids"):
        IdRange(2**32 - 65_536)


def test_unclaimed_ranges_of_one_host_are_freed_only_on_the_second_pass(tmp_path: Path) -> None:
    table = IdRangeAllocator(tmp_path / "ranges.json")
    for owner in ("ams-1/gone", "ams-1/live", "iad-1/other"):
        table.acquire(owner)
    live = {range_owner("ams-1", "live")}

    suspects = table.release_unclaimed("ams-1/", live, set())
    assert suspects == {"ams-1/gone"} and "ams-1/gone" in table.held()  # first pass: kept

    assert table.release_unclaimed("ams-1/", live, suspects) == set()
    assert set(table.held()) == {"ams-1/live", "iad-1/other"}  # another host's: untouched


def test_an_owner_claimed_again_before_the_second_pass_keeps_its_range(tmp_path: Path) -> None:
    table = IdRangeAllocator(tmp_path / "ranges.json")
    table.acquire("ams-1/new")
    suspects = table.release_unclaimed("ams-1/", set(), set())  # started after the snapshot

    table.release_unclaimed("ams-1/", {"ams-1/new"}, suspects)

    assert "ams-1/new" in table.held()
