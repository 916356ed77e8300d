"""``ferry postgres create`` asks every member's region for room before it makes
anything: a region without room is refused by name and no app, volume or machine is
made. (The room check itself is tested against the real API in
tests/unit/server/test_room_api.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from ferry.errors import CapacityError
from ferry.model import Region
from ferry.postgres import manage, plan


class RoomlessClient:
    """Answers what ``create_cluster`` asks first; records every call."""

    def __init__(self, full: str) -> None:
        self.full = full
        self.calls: list[tuple[str, Any]] = []

    def regions(self) -> list[Region]:
        return [Region(code=c, name=c) for c in ("ams", "iad", "sin")]

    def check_room(self, region: str, size_gb: int, cpus: int, memory_mb: int) -> str:
        self.calls.append(("check_room", (region, size_gb, cpus, memory_mb)))
        if region == self.full:
            raise CapacityError(f"no host in region {region} has room for a {size_gb} GB volume")
        return f"{region}-1"

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args))

        return record


def test_a_region_without_room_is_refused_before_anything_is_made() -> None:
    client = RoomlessClient(full="sin")
    request = plan.CreateRequest(
        name="pgdb", region="ams", replicas=("iad", "sin"), volume_size_gb=3
    )
    with pytest.raises(CapacityError, match="region sin"):
        manage.create_cluster(client, request, "pg:1")  # type: ignore[arg-type]
    assert client.calls == [
        ("check_room", ("ams", 3, 1, manage.DEFAULT_MEMORY_MB)),
        ("check_room", ("iad", 3, 1, manage.DEFAULT_MEMORY_MB)),
        ("check_room", ("sin", 3, 1, manage.DEFAULT_MEMORY_MB)),
    ]


def test_the_vm_size_is_what_the_room_must_hold() -> None:
    client = RoomlessClient(full="ams")
    request = plan.CreateRequest(name="pgdb", region="ams", vm_size="performance-2x")
    with pytest.raises(CapacityError):
        manage.create_cluster(client, request, "pg:1")  # type: ignore[arg-type]
    assert client.calls == [("check_room", ("ams", 1, 2, 4096))]
