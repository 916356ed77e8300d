"""``/v1/apps/{app}/postgres`` and the follow loop against the real store and services:
a replica of the database appears where the app has run for the window, goes after
the scale-in window (machine, then its volume), and bad policies change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.postgres import plan

from .conftest import Api
from .test_volumes_api import agent_reports, create_volume, give_room

IMAGE = "registry.local/pg:1"
POLICY = {"database": "db", "replicas": "follow", "scale_out_after": 10, "scale_in_after": 60}


@pytest.fixture
def cluster(api: Api) -> Api:
    """A database ``db`` with one member in ams on a pg_data volume; an app ``web``;
    hosts with room in ams and sin."""
    api.register_host("ams-1", "ams")
    api.register_host("sin-1", "sin", subnet="10.2.0.0/24")
    for host in ("ams-1", "sin-1"):
        give_room(api, host)
    api.create_app("db")
    api.create_app("web")
    volume = create_volume(api, "db", name=plan.VOLUME_NAME, region="ams", size_gb=2)
    config = {
        "image": IMAGE,
        "env": {"PG_SCOPE": "db", "ETCD_LOCAL": "1", "ETCD_ENDPOINTS": "http://[fdaa::2]:2379"},
        "metadata": {plan.MEMBER_METADATA: "member"},
        "mounts": [{"volume": volume["id"], "path": "/data", "name": plan.VOLUME_NAME}],
    }
    api.report(api.create_machine("db", config=config, region="ams"), "started")
    return api


def follower_machines(api: Api) -> list[dict[str, Any]]:
    machines = api.client.get("/v1/apps/db/machines").json()
    return [m for m in machines if m["config"]["metadata"].get(plan.MEMBER_METADATA) == "follower"]


def test_a_policy_is_stored_read_and_removed(cluster: Api) -> None:
    put = cluster.client.put("/v1/apps/web/postgres", json=POLICY)
    assert put.status_code == 200, put.text
    assert cluster.client.get("/v1/apps/web/postgres").json()["database"] == "db"
    assert cluster.client.delete("/v1/apps/web/postgres").json() == {"ok": True, "deleted": True}
    missing = cluster.client.get("/v1/apps/web/postgres")
    assert missing.status_code == 404 and "[postgres]" in missing.json()["error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"database": "nope"}, "there is no Postgres app 'nope'"),
        ({"database": "web"}, "web cannot follow itself"),
        ({"database": "db", "replicas": "always"}, "replicas"),
        ({"database": "db", "min_replicas": -1}, "min_replicas"),
        ({"database": "db", "scale_in_after": "soon"}, "invalid duration"),
    ],
)
def test_bad_policies_are_refused_by_name_and_store_nothing(
    cluster: Api, body: dict[str, Any], words: str
) -> None:
    response = cluster.client.put("/v1/apps/web/postgres", json=body)
    assert 400 <= response.status_code < 500 and words in response.json()["error"]
    assert cluster.client.get("/v1/apps/web/postgres").status_code == 404


def test_an_app_that_is_not_a_postgres_cluster_is_refused(cluster: Api) -> None:
    cluster.create_app("plain")
    response = cluster.client.put("/v1/apps/web/postgres", json={"database": "plain"})
    assert response.status_code == 400 and "not a Ferry Postgres cluster" in response.text


def test_a_replica_follows_the_app_into_sin_and_out_again(cluster: Api) -> None:
    api, loop = cluster, cluster.plane.pg_follow
    assert api.client.put("/v1/apps/web/postgres", json=POLICY).status_code == 200
    web = api.create_machine("web", config={"image": "registry.local/web:1"}, region="sin")
    api.report(web, "started")

    assert "sin: app running 0/10 s" in loop.run_once()
    api.clock.advance(10)
    line = loop.run_once()
    assert "add sin: created" in line, line
    [follower] = follower_machines(api)
    assert follower["region"] == "sin" and follower["config"]["env"]["PG_FOLLOWER"] == "1"
    assert "ETCD_LOCAL" not in follower["config"]["env"]
    volume = api.client.get("/v1/apps/db/volumes").json()
    made = [v for v in volume if v["name"] == "pg_follow"]
    assert len(made) == 1 and made[0]["size_gb"] == 2 and made[0]["region"] == "sin"
    assert made[0]["attached_machine_id"] == follower["id"]
    api.report(follower, "started")
    assert "nothing to do" in loop.run_once()  # one replica per region

    api.client.delete(f"/v1/apps/web/machines/{web['id']}", params={"force": "true"})
    api.report(web, "destroyed", "exit")
    assert "sin: app gone 0/60 s" in loop.run_once()
    api.clock.advance(60)
    assert f"remove sin: destroying {follower['id']}" in loop.run_once()
    api.report(follower, "destroyed", "exit")
    assert "drop_volume sin: destroying volume" in loop.run_once()
    agent_reports(api, made[0], state="destroyed")
    remaining = [v["name"] for v in api.client.get("/v1/apps/db/volumes").json()]
    assert remaining == [plan.VOLUME_NAME]  # the member create made is untouched
    status = api.client.get("/v1/apps/web/postgres/status").json()
    assert [a["kind"] for a in status["actions"]] == ["drop_volume", "remove", "add"]


def test_a_region_without_room_is_retried_later_and_its_volume_goes(cluster: Api) -> None:
    api, loop = cluster, cluster.plane.pg_follow
    api.register_host("iad-1", "iad", subnet="10.3.0.0/24", memory_mb=64)
    give_room(api, "iad-1")
    web = api.create_machine("web", config={"image": "registry.local/web:1"}, region="sin")
    api.report(web, "started")
    api.client.put("/v1/apps/web/postgres", json={**POLICY, "scale_out_after": 0})
    line = loop.run_once()
    assert "add sin: created" in line
    api.create_machine(
        "web", config={"image": "registry.local/web:1", "guest": {"memory_mb": 64}}, region="iad"
    )
    line = loop.run_once()
    assert "add iad: failed" in line, line
    volumes = api.client.get("/v1/apps/db/volumes").json()
    states = {v["region"]: v["state"] for v in volumes}
    assert states["iad"] == "pending_destroy" and states["sin"] == "creating"
    assert "retrying a failed add" in loop.run_once()
