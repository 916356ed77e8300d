"""/v1/apps/{app}/releases: record, finish, list and read releases; bad input is a clear 4xx."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Api

IMAGE = "reg/web@sha256:" + "b" * 64


def record(api: Api, **body: Any) -> dict[str, Any]:
    body.setdefault("image", IMAGE)
    response = api.client.post("/v1/apps/web/releases", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_deploys_release_is_recorded_finished_and_listed(api: Api) -> None:
    api.create_app("web")
    web = {"image": IMAGE, "env": {"GREETING": "v1"}, "metadata": {"fly_process_group": "web"}}
    worker = {"image": IMAGE, "init": {"cmd": ["bin/worker"]}}
    first = record(api, strategy="bluegreen", configs={"web": web, "worker": worker})
    assert first["version"] == 1 and first["status"] == "running"
    assert first["user"] == "admin" and first["strategy"] == "bluegreen"
    assert first["created_at"].startswith("2026-01-01")
    api.clock.advance(60)
    done = api.client.patch("/v1/apps/web/releases/1", json={"status": "complete"})
    assert done.status_code == 200 and done.json()["status"] == "complete"
    record(api, description="rollback to v1")

    listing = api.client.get("/v1/apps/web/releases").json()
    assert [(r["version"], r["status"]) for r in listing] == [(2, "running"), (1, "complete")]
    one = api.client.get("/v1/apps/web/releases/1").json()
    assert one["configs"]["web"]["env"] == {"GREETING": "v1"} and one["image"] == IMAGE
    assert one["configs"]["worker"]["init"]["cmd"] == ["bin/worker"]
    assert one["updated_at"] != one["created_at"]
    assert len(api.client.get("/v1/apps/web/releases", params={"limit": 1}).json()) == 1


def test_unknown_app_or_version_is_404_naming_it(api: Api) -> None:
    missing_app = api.client.get("/v1/apps/ghost/releases")
    assert missing_app.status_code == 404 and "'ghost'" in missing_app.json()["error"]
    assert api.client.post("/v1/apps/ghost/releases", json={"image": IMAGE}).status_code == 404
    api.create_app("web")
    missing = api.client.get("/v1/apps/web/releases/7")
    assert missing.status_code == 404
    assert missing.json()["error"] == "app 'web' has no release v7"
    assert "ferry releases" in missing.json()["hint"]
    patch = api.client.patch("/v1/apps/web/releases/7", json={"status": "failed"})
    assert patch.status_code == 404


def test_a_finished_release_cannot_change_again(api: Api) -> None:
    api.create_app("web")
    record(api)
    assert api.client.patch("/v1/apps/web/releases/1", json={"status": "failed"}).status_code == 200
    again = api.client.patch("/v1/apps/web/releases/1", json={"status": "complete"})
    assert again.status_code == 409 and "already failed" in again.json()["error"]
    assert api.client.get("/v1/apps/web/releases/1").json()["status"] == "failed"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "image"),
        ({"image": ""}, "image"),
        ({"image": "x" * 600}, "image"),
        ({"image": IMAGE, "strategy": "blue-green"}, "strategy"),
        ({"image": IMAGE, "status": "complete"}, "status"),  # a new release is always running
        ({"image": IMAGE, "configs": {"app": {"env": {}}}}, "configs.app.image"),
        ({"image": IMAGE, "configs": {"": {"image": IMAGE}}}, "configs..[key]"),
        (
            {
                "image": IMAGE,
                "configs": {"web": {"image": IMAGE, "metadata": {"fly_process_group": "worker"}}},
            },
            "configs.web: its metadata fly_process_group is 'worker', not 'web'",
        ),
        ({"image": IMAGE, "config": {"image": IMAGE}}, "config"),  # one config for every group
        ({"image": IMAGE, "description": "d" * 201}, "description"),
    ],
)
def test_a_bad_new_release_is_400_naming_the_field_and_records_nothing(
    api: Api, body: dict[str, Any], named: str
) -> None:
    api.create_app("web")
    response = api.client.post("/v1/apps/web/releases", json=body)
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]
    assert api.client.get("/v1/apps/web/releases").json() == []


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/v1/apps/web/releases/0", {"status": "complete"}, "version"),
        ("/v1/apps/web/releases/v1", {"status": "complete"}, "version"),
        ("/v1/apps/web/releases/1", {"status": "running"}, "status"),
        ("/v1/apps/web/releases/1", {"status": "done"}, "status"),
        ("/v1/apps/web/releases/1", {}, "status"),
    ],
)
def test_a_bad_version_or_status_is_400_and_changes_nothing(
    api: Api, path: str, body: dict[str, Any], named: str
) -> None:
    api.create_app("web")
    record(api)
    response = api.client.patch(path, json=body)
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]
    assert api.client.get("/v1/apps/web/releases/1").json()["status"] == "running"


@pytest.mark.parametrize("limit", ["0", "1001", "many"])
def test_a_bad_limit_is_400(api: Api, limit: str) -> None:
    api.create_app("web")
    response = api.client.get("/v1/apps/web/releases", params={"limit": limit})
    assert response.status_code == 400 and "limit" in response.json()["error"]
