"""The one-line reasons users and logs see for placements and refusals."""

from __future__ import annotations

from ferry.scheduler import NoPlacement, Placement

from .harness import Harness


def test_placement_reason_names_the_host_the_spread_and_free_memory() -> None:
    h = Harness()
    h.add_host("ams-1", memory_mb=8192, used_memory_mb=2048, used_cpus=1, apps={"web": 1})
    h.add_host("ams-2", memory_mb=8192, used_memory_mb=8192, used_cpus=8, apps={"web": 2})
    [placement] = h.submit("web")
    assert placement == Placement(
        "ams-1", "ams", "host ams-1: had 1 of 3 web machines in ams, 75% memory free"
    )


def test_no_room_names_region_request_and_the_largest_free_host() -> None:
    h = Harness()
    h.add_host("ams-1", cpus=4, memory_mb=8192, used_cpus=2, used_memory_mb=4352)
    h.add_host("ams-2", cpus=4, memory_mb=8192, used_cpus=1, used_memory_mb=7168)
    h.add_host("ams-3", up=False)
    [refusal] = h.submit("web", cpus=4, memory_mb=8192)
    assert refusal == NoPlacement(
        "ams",
        "no host in region ams has room for 4 cpus / 8192 MB: "
        "largest free is 2 cpus / 3840 MB on ams-1 (2 hosts up, 1 down)",
    )


def test_no_room_reason_uses_singulars_and_never_shows_negative_room() -> None:
    h = Harness()
    h.add_host("ams-1", cpus=2, memory_mb=1024, used_cpus=3, used_memory_mb=2048)
    [refusal] = h.submit("web", cpus=1, memory_mb=256)
    assert refusal == NoPlacement(
        "ams",
        "no host in region ams has room for 1 cpu / 256 MB: "
        "largest free is 0 cpus / 0 MB on ams-1 (1 host up, 0 down)",
    )


def test_largest_free_ties_break_on_cpus_then_host_id() -> None:
    h = Harness()
    h.add_host("ams-b", cpus=4, memory_mb=1024, used_cpus=1)
    h.add_host("ams-a", cpus=4, memory_mb=1024, used_cpus=1)
    h.add_host("ams-c", cpus=4, memory_mb=1024, used_cpus=3)
    [refusal] = h.submit("web", cpus=4, memory_mb=256)
    assert isinstance(refusal, NoPlacement)
    assert "largest free is 3 cpus / 1024 MB on ams-a (3 hosts up, 0 down)" in refusal.reason


def test_every_host_down_says_no_host_is_up() -> None:
    h = Harness()
    h.add_host("ams-1", up=False)
    h.add_host("ams-2", up=False)
    h.add_host("iad-1", region="iad")
    [refusal] = h.submit("web", region="ams")
    assert refusal == NoPlacement("ams", "no host is up in region ams (2 hosts down)")


def test_a_region_without_hosts_says_so() -> None:
    h = Harness()
    h.add_host("ams-1")
    [refusal] = h.submit("web", region="xyz")
    assert refusal == NoPlacement("xyz", "region xyz has no hosts")


def test_an_empty_snapshot_has_no_hosts_in_any_region() -> None:
    h = Harness()
    [refusal] = h.submit("web", region="ams")
    assert refusal == NoPlacement("ams", "region ams has no hosts")


def test_reasons_are_single_lines() -> None:
    h = Harness()
    h.add_host("ams-1", cpus=1, memory_mb=256)
    h.add_host("ams-2", up=False)
    h.submit("web", count=2)
    h.submit("web", region="iad")
    assert len(h.submissions) == 3
    assert all("\n" not in s.outcome.reason for s in h.submissions)
