"""``GET /v1/platform/room``: ``ferry postgres create`` asks it per region before it
makes anything; a region without a host that has both the disk and the CPU/memory for a
member is refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Api
from .test_volumes_api import create_volume, give_room


@pytest.fixture
def hosts(api: Api) -> Api:
    api.register_host("ams-1", "ams", cpus=2, memory_mb=1024)
    api.register_host("ams-2", "ams", subnet="10.2.0.0/24", cpus=8, memory_mb=8192)
    give_room(api, "ams-1", gb=10)
    give_room(api, "ams-2", gb=2)
    api.create_app()
    return api


def room(api: Api, **params: Any) -> Any:
    params.setdefault("region", "ams")
    return api.client.get("/v1/platform/room", params=params)


def test_the_host_with_both_disk_and_memory_is_named(hosts: Api) -> None:
    assert room(hosts, size_gb=5, memory_mb=512).json() == {"region": "ams", "host_id": "ams-1"}
    # 4 GB of memory: only ams-2 has it, and it has 2 GB of disk
    assert room(hosts, size_gb=2, memory_mb=4096).json()["host_id"] == "ams-2"


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"size_gb": 11}, 422, "no host in region ams has room for a 11 GB volume"),
        ({"size_gb": 5, "cpus": 4}, 422, "no host in region ams with room for a 5 GB volume"),
        ({"region": "sin"}, 422, "region sin has no host that is up"),
        ({"size_gb": 0}, 400, "at least 1 GB"),
        ({"cpus": 0}, 400, "cpus"),
    ],
)
def test_a_region_without_room_is_refused_by_name(
    hosts: Api, params: dict[str, Any], status: int, words: str
) -> None:
    answer = room(hosts, **params)
    assert answer.status_code == status and words in answer.json()["error"], answer.text


def test_volumes_already_promised_count_against_the_room(hosts: Api) -> None:
    create_volume(hosts, size_gb=9)  # on ams-1, the roomier
    answer = room(hosts, size_gb=3)
    assert answer.status_code == 422 and "the most free is 2.0 GB" in answer.json()["error"]
