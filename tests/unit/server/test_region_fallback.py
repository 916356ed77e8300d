"""Regional capacity fallback: a full region sends the machine to the nearest one with room."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.autoscale import RegionDistances

from .conftest import Api, FakeClock, open_api

RTT = RegionDistances.from_pairs({"ams-iad": 84, "ams-sin": 169, "iad-sin": 224})
BIG = {"image": "registry.local/web:1", "guest": {"cpus": 2, "memory_mb": 1024}}


def cluster(api: Api) -> Api:
    api.register_host("ams-1", "ams", cpus=1, memory_mb=512, subnet="10.1.0.0/24")
    api.register_host("iad-1", "iad", cpus=4, memory_mb=4096, subnet="10.2.0.0/24")
    api.register_host("sin-1", "sin", cpus=4, memory_mb=4096, subnet="10.3.0.0/24")
    api.create_app("web")
    return api


@pytest.fixture
def api(tmp_path: Path, clock: FakeClock) -> Iterator[Api]:
    for opened in open_api(tmp_path / "state.db", clock, distances=RTT):
        yield cluster(opened)


def test_plain_api_calls_keep_flys_422(api: Api) -> None:
    response = api.client.post("/v1/apps/web/machines", json={"region": "ams", "config": BIG})

    assert response.status_code == 422
    assert "no host in region ams has room for 2 cpus / 1024 MB" in response.json()["error"]


def test_fallback_places_in_the_nearest_region_with_room_and_says_so(api: Api) -> None:
    body = {"region": "ams", "config": BIG, "region_fallback": True}
    answer = api.create_machine(**body)

    assert answer["region"] == "iad"  # 84 ms from ams, sin is 169 ms
    assert answer["placement_note"].startswith(
        "placed in iad: no host in region ams has room for 2 cpus / 1024 MB: largest free is"
    )
    assert answer["placement_note"].endswith("(nearest region with room, by round-trip time)")
    events = api.client.get(f"/v1/apps/web/machines/{answer['id']}/events").json()
    assert events[-1]["request"]["placement_note"] == answer["placement_note"]


def test_without_latency_figures_the_fallback_is_alphabetical_and_says_so(
    tmp_path: Path, clock: FakeClock
) -> None:
    for api in open_api(tmp_path / "plain.db", clock):
        cluster(api)
        api.register_host("sin-1", "sin", cpus=8, memory_mb=8192, subnet="10.3.0.0/24")
        api.register_host("iad-1", "iad", cpus=1, memory_mb=512, subnet="10.2.0.0/24")
        answer = api.create_machine(region="ams", config=BIG, region_fallback=True)
        assert answer["region"] == "sin"  # iad is full too; next alphabetically
        assert "alphabetical: no latency figures" in answer["placement_note"]


def test_no_room_anywhere_is_still_422_with_advice(api: Api) -> None:
    huge = {"image": "registry.local/web:1", "guest": {"cpus": 16, "memory_mb": 1024}}
    body = {"region": "ams", "config": huge, "region_fallback": True}
    response = api.client.post("/v1/apps/web/machines", json=body)

    assert response.status_code == 422
    assert (
        response.json()["hint"] == "no region has room either: add hosts or choose a smaller size"
    )


def test_the_autoscaler_uses_the_fallback_and_counts_the_machine_where_it_was_wanted(
    api: Api,
) -> None:
    template = api.create_machine(region="sin", config=BIG)
    api.report(template, "started")
    policy = {"regions": ["ams", "sin"], "min_per_region": 1, "scale_out_after": 0}
    api.client.put("/v1/apps/web/autoscale", json=policy)

    api.plane.autoscaler.run_once()
    api.clock.advance(1)
    api.plane.autoscaler.run_once()

    machines = api.client.get("/v1/apps/web/machines").json()
    assert sorted(m["region"] for m in machines) == ["iad", "sin"]  # one, not one per cycle
    status = api.client.get("/v1/apps/web/autoscale/status").json()
    assert status["decisions"][0]["result"].startswith("created ")
    assert "placed in iad: no host in region ams has room" in status["decisions"][0]["result"]
