"""Which host gets a new volume: room counted by full sizes, unique zones first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ferry.errors import CapacityError, ValidationError
from ferry.model import Host, HostStatus
from ferry.model.volume import Volume, VolumeState
from ferry.server.volume_placement import GIB, check_size, choose_volume_host, region_of_request

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def host(host_id: str, region: str = "ams", status: HostStatus = HostStatus.UP) -> Host:
    return Host.model_validate(
        {
            "id": host_id,
            "region": region,
            "address": "10.0.0.2",
            "cpus": 2,
            "memory_mb": 2048,
            "machine_subnet": "10.1.0.0/24",
            "status": status,
            "last_heartbeat": NOW,
            "registered_at": NOW,
        }
    )


def vol(host_id: str, size_gb: int, name: str = "data") -> Volume:
    return Volume(
        id=f"vol_{host_id}_{size_gb}",
        name=name,
        app_name="db",
        state=VolumeState.CREATED,
        size_gb=size_gb,
        region="ams",
        zone=host_id,
        host_id=host_id,
        created_at=NOW,
    )


def test_the_roomiest_host_without_a_volume_of_that_name_wins() -> None:
    hosts = [host("a"), host("b"), host("c", region="iad")]
    capacities = {"a": 10 * GIB, "b": 10 * GIB, "c": 100 * GIB}

    first = choose_volume_host("data", "ams", 1, hosts, [vol("b", 5)], capacities)
    spread = choose_volume_host("data", "ams", 1, hosts, [vol("a", 1)], capacities)

    assert first.id == "a" and spread.id == "b"


def test_no_room_names_the_region_and_the_most_free() -> None:
    with pytest.raises(CapacityError, match=r"no host in region ams .* 3.0 GB"):
        choose_volume_host("data", "ams", 4, [host("a")], [vol("a", 7)], {"a": 10 * GIB})
    with pytest.raises(CapacityError, match="no host that is up"):
        choose_volume_host("data", "ams", 1, [host("a", status=HostStatus.DOWN)], [], {})


def test_sizes_and_regions_are_checked() -> None:
    with pytest.raises(ValidationError, match="at least 1 GB"):
        check_size(0)
    with pytest.raises(ValidationError, match="at least 3 GB"):
        check_size(2, at_least=3)
    with pytest.raises(ValidationError, match="needs a region"):
        region_of_request(None, ["ams", "iad"])
    assert region_of_request(None, ["ams"]) == "ams"
