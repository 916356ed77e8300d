"""Which host a machine lands on: spread, room, up hosts, region, ties."""

from __future__ import annotations

from ferry.scheduler import NoPlacement, Placement

from .harness import Harness


def test_spreads_an_apps_machines_evenly_across_hosts() -> None:
    h = Harness()
    for name in ("ams-1", "ams-2", "ams-3"):
        h.add_host(name)
    h.submit("web", count=6)
    assert h.spread_of("web") == {"ams-1": 2, "ams-2": 2, "ams-3": 2}
    # the first three go to three different hosts, not two on one
    assert sorted(h.hosts_of("web")[:3]) == ["ams-1", "ams-2", "ams-3"]


def test_spread_beats_free_memory() -> None:
    h = Harness()
    h.add_host("big", memory_mb=65536, apps={"web": 1}, used_memory_mb=256, used_cpus=1)
    h.add_host("small", memory_mb=1024)
    assert h.submit("web") == [Placement("small", "ams", h.placements[0].reason)]
    assert h.hosts_of("web") == ["small"]


def test_other_apps_machines_do_not_count_against_spread() -> None:
    h = Harness()
    h.add_host("ams-1", memory_mb=32768, apps={"db": 5}, used_cpus=5, used_memory_mb=1280)
    h.add_host("ams-2", memory_mb=8192)
    h.submit("web")
    assert h.hosts_of("web") == ["ams-1"]  # more free memory, and no web machine on either


def test_among_equally_spread_hosts_the_one_with_most_free_memory_wins() -> None:
    h = Harness()
    h.add_host("a", memory_mb=8192, used_memory_mb=4096)
    h.add_host("b", memory_mb=8192, used_memory_mb=1024)
    h.add_host("c", memory_mb=8192, used_memory_mb=2048)
    h.submit("web")
    assert h.hosts_of("web") == ["b"]


def test_ties_go_to_the_lowest_host_id_whatever_the_input_order() -> None:
    for names in (["ams-3", "ams-1", "ams-2"], ["ams-2", "ams-3", "ams-1"]):
        h = Harness()
        for name in names:
            h.add_host(name)
        h.submit("web", count=3)
        assert h.hosts_of("web") == ["ams-1", "ams-2", "ams-3"]


def test_a_host_without_enough_free_cpus_is_skipped() -> None:
    h = Harness()
    h.add_host("roomy-memory", cpus=8, used_cpus=7, memory_mb=65536)
    h.add_host("roomy-cpus", cpus=8, memory_mb=4096)
    h.submit("web", cpus=2, memory_mb=512)
    assert h.hosts_of("web") == ["roomy-cpus"]


def test_a_host_without_enough_free_memory_is_skipped() -> None:
    h = Harness()
    h.add_host("a", cpus=64, memory_mb=2048, used_memory_mb=1536)
    h.add_host("b", cpus=2, memory_mb=1024)
    h.submit("web", cpus=1, memory_mb=1024)
    assert h.hosts_of("web") == ["b"]


def test_a_host_is_filled_exactly_to_capacity_and_no_further() -> None:
    h = Harness()
    h.add_host("ams-1", cpus=2, memory_mb=512)
    outcomes = h.submit("web", cpus=1, memory_mb=256, count=3)
    assert [type(o) for o in outcomes] == [Placement, Placement, NoPlacement]
    full = h.host("ams-1")
    assert (full.used_cpus, full.used_memory_mb) == (2, 512)


def test_a_down_host_never_receives_a_machine_even_when_emptiest() -> None:
    h = Harness()
    h.add_host("ams-down", memory_mb=65536, up=False)
    h.add_host("ams-up", memory_mb=4096, apps={"web": 3}, used_cpus=3, used_memory_mb=768)
    h.submit("web", count=4)
    assert set(h.hosts_of("web")) == {"ams-up"}


def test_machines_stay_in_the_requested_region() -> None:
    h = Harness()
    h.add_host("ams-1", region="ams", memory_mb=4096)
    h.add_host("iad-1", region="iad", memory_mb=65536)
    h.add_host("iad-2", region="iad", memory_mb=65536)
    h.submit("web", region="ams", count=3)
    assert h.hosts_of("web") == ["ams-1"] * 3
    assert {p.region for p in h.placements} == {"ams"}


def test_no_room_in_the_region_is_refused_even_if_another_region_has_room() -> None:
    h = Harness()
    h.add_host("ams-1", region="ams", cpus=1, memory_mb=256)
    h.add_host("iad-1", region="iad", cpus=64, memory_mb=65536)
    [outcome] = h.submit("web", region="ams", cpus=2, memory_mb=256)
    assert isinstance(outcome, NoPlacement)
    assert outcome.region == "ams"


def test_a_refusal_changes_nothing() -> None:
    h = Harness()
    h.add_host("ams-1", cpus=1, memory_mb=256)
    before = h.snapshot()
    h.submit("web", cpus=4, memory_mb=256)
    assert h.snapshot() == before


def test_placements_are_committed_so_the_next_one_sees_them() -> None:
    h = Harness()
    h.add_host("ams-1", cpus=4, memory_mb=4096)
    h.submit("web", cpus=1, memory_mb=1024)
    h.submit("api", cpus=2, memory_mb=512)
    host = h.host("ams-1")
    assert (host.used_cpus, host.used_memory_mb) == (3, 1536)
    assert host.app_machines == {"web": 1, "api": 1}


def test_release_makes_room_again() -> None:
    h = Harness()
    h.add_host("ams-1", cpus=1, memory_mb=1024)
    h.submit("web", cpus=1, memory_mb=1024)
    assert isinstance(h.submit("web", cpus=1, memory_mb=1024)[0], NoPlacement)
    h.release("ams-1", "web", cpus=1, memory_mb=1024)
    assert isinstance(h.submit("web", cpus=1, memory_mb=1024)[0], Placement)
    assert h.host("ams-1").app_machines == {"web": 1}


def test_release_lowers_the_app_count_that_spread_sees() -> None:
    h = Harness()
    h.add_host("ams-1", memory_mb=8192)
    h.add_host("ams-2", memory_mb=4096)
    h.submit("web", count=2)  # one on each
    h.release("ams-2", "web")
    h.submit("web")
    assert h.hosts_of("web")[-1] == "ams-2"  # now the host with fewer web machines


def test_hosts_added_after_submissions_take_part() -> None:
    h = Harness()
    h.add_host("ams-1")
    h.submit("web", count=2)
    h.add_host("ams-2")
    h.submit("web")
    assert h.hosts_of("web") == ["ams-1", "ams-1", "ams-2"]
