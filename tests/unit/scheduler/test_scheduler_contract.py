"""The Scheduler's public contract: exports, bad input, release, snapshot."""

from __future__ import annotations

import pytest

import ferry.scheduler
from ferry.errors import ConflictError, NotFoundError, ValidationError
from ferry.scheduler import HostCapacity, PlacementRequest, Scheduler, place_machine


def test_exports_are_exactly_the_public_api() -> None:
    assert sorted(ferry.scheduler.__all__) == [
        "HostCapacity",
        "NoPlacement",
        "Placement",
        "PlacementRequest",
        "Scheduler",
        "place_machine",
    ]
    for name in ferry.scheduler.__all__:
        assert getattr(ferry.scheduler, name).__module__.startswith("ferry.scheduler")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpus": 0}, "placement request for app web: cpus must be at least 1, got 0"),
        ({"memory_mb": -5}, "placement request for app web: memory_mb must be at least 1, got -5"),
        ({"app": ""}, "a placement request has an empty app name"),
        ({"region": ""}, "the placement request for app web has an empty region"),
    ],
)
def test_bad_requests_are_refused_with_a_message_naming_the_field(
    kwargs: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {"app": "web", "region": "ams", "cpus": 1, "memory_mb": 256}
    with pytest.raises(ValidationError) as caught:
        PlacementRequest(**{**fields, **kwargs})  # type: ignore[arg-type]
    assert caught.value.message == message


def test_bad_host_capacities_are_refused_with_a_message_naming_the_host() -> None:
    with pytest.raises(ValidationError, match="host ams-1: memory_mb must be at least 1, got 0"):
        HostCapacity("ams-1", "ams", cpus=2, memory_mb=0)
    with pytest.raises(ValidationError, match="host ams-1: machines of app 'web' must be at least"):
        HostCapacity("ams-1", "ams", cpus=2, memory_mb=512, app_machines={"web": -1})


def test_duplicate_host_ids_are_refused_by_both_entry_points() -> None:
    hosts = [HostCapacity("ams-1", "ams", 2, 512), HostCapacity("ams-1", "iad", 2, 512)]
    request = PlacementRequest("web", "ams", 1, 256)
    with pytest.raises(ValidationError, match="host ams-1 appears twice"):
        Scheduler(hosts)
    with pytest.raises(ValidationError, match="host ams-1 appears twice"):
        place_machine(request, hosts)


def test_release_refuses_unknown_hosts_and_impossible_releases_without_changing_anything() -> None:
    scheduler = Scheduler(
        [
            HostCapacity(
                "ams-1", "ams", 4, 1024, used_cpus=1, used_memory_mb=256, app_machines={"web": 1}
            )
        ]
    )
    before = scheduler.snapshot()
    with pytest.raises(NotFoundError, match="host ams-9 is not in the scheduler"):
        scheduler.release("ams-9", "web", 1, 256)
    with pytest.raises(ConflictError, match="host ams-1 holds no machine of app api"):
        scheduler.release("ams-1", "api", 1, 256)
    with pytest.raises(ConflictError, match="only 1 cpus / 256 MB are in use"):
        scheduler.release("ams-1", "web", 2, 256)
    with pytest.raises(ValidationError, match="must not be negative"):
        scheduler.release("ams-1", "web", -1, 256)
    assert scheduler.snapshot() == before


def test_release_on_a_down_host_is_accepted_and_shows_in_the_snapshot() -> None:
    scheduler = Scheduler(
        [HostCapacity("ams-1", "ams", 4, 1024, 2, 512, app_machines={"web": 2}, up=False)]
    )
    scheduler.release("ams-1", "web", 1, 256)
    [host] = scheduler.snapshot()
    assert (host.used_cpus, host.used_memory_mb, dict(host.app_machines), host.up) == (
        1,
        256,
        {"web": 1},
        False,
    )


def test_snapshot_keeps_input_order_and_drops_zero_app_counts() -> None:
    hosts = [
        HostCapacity("iad-1", "iad", 2, 512, app_machines={"web": 0}),
        HostCapacity("ams-1", "ams", 2, 512),
    ]
    snapshot = Scheduler(hosts).snapshot()
    assert [h.host_id for h in snapshot] == ["iad-1", "ams-1"]
    assert dict(snapshot[0].app_machines) == {}


def test_snapshot_is_a_copy_the_caller_cannot_use_to_change_the_index() -> None:
    scheduler = Scheduler([HostCapacity("ams-1", "ams", 2, 512)])
    snapshot = scheduler.snapshot()
    assert isinstance(snapshot[0].app_machines, dict)
    snapshot[0].app_machines["web"] = 5
    assert dict(scheduler.snapshot()[0].app_machines) == {}
