"""Fly's Volumes resource: create, list, get, extend, destroy, snapshots; the bad inputs
the issue names are refused with a sentence and change nothing."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .conftest import Api

GIB = 1024**3
IMAGE = "registry.local/web:1"


def give_room(api: Api, host_id: str = "ams-1", gb: int = 10) -> None:
    """The host's agent reports ``gb`` GiB it can give volumes."""
    response = api.client.post(
        f"/v1/hosts/{host_id}/volumes/report", json={"capacity_bytes": gb * GIB}
    )
    assert response.status_code == 204, response.text


def create_volume(api: Api, app: str = "web", **body: Any) -> dict[str, Any]:
    body.setdefault("name", "data")
    body.setdefault("region", "ams")
    body.setdefault("size_gb", 1)
    response = api.client.post(f"/v1/apps/{app}/volumes", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def agent_reports(api: Api, volume: dict[str, Any], **entry: Any) -> None:
    entry.setdefault("state", "ready")
    entry.setdefault("size_gb", volume["size_gb"])
    response = api.client.post(
        f"/v1/hosts/{volume['host_id']}/volumes/report",
        json={"volumes": [{"id": volume["id"], **entry}]},
    )
    assert response.status_code == 204, response.text


@pytest.fixture
def ready(api: Api) -> Api:
    api.register_host()
    api.create_app()
    give_room(api)
    return api


def test_a_volume_is_created_in_flys_shape_then_created_when_the_agent_made_it(
    ready: Api,
) -> None:
    volume = create_volume(ready, size_gb=3)

    assert volume["id"].startswith("vol_") and volume["state"] == "creating"
    assert (volume["name"], volume["region"], volume["size_gb"]) == ("data", "ams", 3)
    assert volume["host_id"] == volume["zone"] == "ams-1"
    assert volume["encrypted"] is False and volume["fstype"] == "ext4"
    assert volume["attached_machine_id"] is None
    agent_reports(ready, volume, bytes_total=3 * GIB, bytes_used=4096)
    shown = ready.client.get(f"/v1/apps/web/volumes/{volume['id']}").json()
    assert shown["state"] == "created" and shown["bytes_total"] == 3 * GIB
    assert [v["id"] for v in ready.client.get("/v1/apps/web/volumes").json()] == [volume["id"]]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"size_gb": 0}, "at least 1 GB"),
        ({"size_gb": 11}, "no host in region ams has room for a 11 GB volume"),
        ({"region": "zzz"}, "unknown region 'zzz'"),
        ({"name": "Data!"}, "invalid volume name"),
        ({"encrypted": True}, "encrypted volumes are not supported"),
        ({"source_volume_id": "vol_x"}, "volume 'vol_x' not found"),
        ({"host_dedication_id": "d"}, "host_dedication_id is not supported yet"),
        ({"flux": 1}, "unknown field 'flux'"),
    ],
)
def test_bad_creates_are_refused_by_name_and_make_nothing(
    ready: Api, body: dict[str, Any], words: str
) -> None:
    response = ready.client.post(
        "/v1/apps/web/volumes", json={"name": "data", "region": "ams", "size_gb": 1, **body}
    )

    assert 400 <= response.status_code < 500
    assert words in response.json()["error"]
    assert ready.client.get("/v1/apps/web/volumes").json() == []


def test_room_is_counted_by_the_full_size_of_every_volume(ready: Api) -> None:
    create_volume(ready, size_gb=6)

    response = ready.client.post(
        "/v1/apps/web/volumes", json={"name": "more", "region": "ams", "size_gb": 5}
    )

    assert response.status_code in (409, 422, 503) and "4.0 GB" in response.json()["error"]


def test_a_machine_with_a_volume_runs_on_its_host_and_a_second_claim_is_refused(
    api: Api,
) -> None:
    api.create_app()
    for host in ("ams-1", "ams-2"):
        api.register_host(host, subnet="10.1.0.0/24" if host == "ams-1" else "10.2.0.0/24")
        give_room(api, host, gb=10 if host == "ams-1" else 20)
    volume = create_volume(api)  # the roomier host
    mount = {"volume": volume["id"], "path": "/data"}

    machine = api.create_machine(config={"image": IMAGE, "mounts": [mount]})
    second = api.client.post(
        "/v1/apps/web/machines", json={"config": {"image": IMAGE, "mounts": [mount]}}
    )

    assert machine["host_id"] == volume["host_id"] == "ams-2"
    assert machine["config"]["mounts"][0]["path"] == "/data"
    assert second.status_code == 409 and "in use by machine" in second.json()["error"]
    shown = api.client.get(f"/v1/apps/web/volumes/{volume['id']}").json()
    assert shown["attached_machine_id"] == machine["id"]
    assert len(api.client.get("/v1/apps/web/machines").json()) == 1


def test_a_volume_in_use_cannot_be_destroyed_and_is_free_once_its_machine_is_gone(
    ready: Api,
) -> None:
    volume = create_volume(ready)
    agent_reports(ready, volume)
    machine = ready.create_machine(
        config={"image": IMAGE, "mounts": [{"volume": volume["id"], "path": "/data"}]}
    )

    refused = ready.client.delete(f"/v1/apps/web/volumes/{volume['id']}")
    assert refused.status_code == 409 and machine["id"] in refused.json()["error"]
    ready.report(machine, "destroyed", "exit")
    destroyed = ready.client.delete(f"/v1/apps/web/volumes/{volume['id']}")

    assert destroyed.status_code == 200 and destroyed.json()["state"] == "pending_destroy"
    agent_reports(ready, volume, state="destroyed")
    assert ready.client.get("/v1/apps/web/volumes").json() == []


@pytest.mark.parametrize(
    ("mount", "words"),
    [
        ({"path": "/proc/x"}, "would cover the machine's /proc"),
        ({"path": "data"}, "must be absolute"),
        ({"path": "/data/../etc"}, "must be normalized"),
        ({"path": "/data", "add_size_gb": 1}, "add_size_gb is not supported yet"),
    ],
)
def test_mount_paths_that_clash_are_refused(ready: Api, mount: dict[str, Any], words: str) -> None:
    volume = create_volume(ready)

    response = ready.client.post(
        "/v1/apps/web/machines",
        json={"config": {"image": IMAGE, "mounts": [{"volume": volume["id"], **mount}]}},
    )

    assert response.status_code == 400 and words in response.json()["error"]
    assert (
        ready.client.get(f"/v1/apps/web/volumes/{volume['id']}").json()["attached_machine_id"]
        is None
    )


def test_a_file_under_the_mount_path_is_refused(ready: Api) -> None:
    volume = create_volume(ready)
    config = {
        "image": IMAGE,
        "mounts": [{"volume": volume["id"], "path": "/data"}],
        "files": [{"guest_path": "/data/x", "raw_value": "eA=="}],
    }

    response = ready.client.post("/v1/apps/web/machines", json={"config": config})

    assert response.status_code == 400 and "inside the volume" in response.json()["error"]


def test_extend_grows_only_and_within_the_hosts_room(ready: Api) -> None:
    volume = create_volume(ready, size_gb=2)
    agent_reports(ready, volume)
    url = f"/v1/apps/web/volumes/{volume['id']}/extend"

    smaller = ready.client.put(url, json={"size_gb": 2})
    too_big = ready.client.put(url, json={"size_gb": 20})
    grown = ready.client.put(url, json={"size_gb": 4})

    assert smaller.status_code == 400 and "only grows" in smaller.json()["error"]
    assert too_big.status_code == 409 and "GB free" in too_big.json()["error"]
    assert grown.status_code == 200 and grown.json()["needs_restart"] is False
    assert grown.json()["volume"]["size_gb"] == 4
    assert grown.json()["volume"]["state"] == "extending"
    agent_reports(ready, {**volume, "size_gb": 4})
    assert ready.client.get(f"/v1/apps/web/volumes/{volume['id']}").json()["state"] == "created"


def test_a_snapshot_restores_into_a_new_volume_on_its_host(ready: Api) -> None:
    volume = create_volume(ready, size_gb=2)
    agent_reports(ready, volume)
    url = f"/v1/apps/web/volumes/{volume['id']}/snapshots"

    snapshot = ready.client.post(url).json()
    early = ready.client.post(
        "/v1/apps/web/volumes", json={"name": "copy", "snapshot_id": snapshot["id"], "size_gb": 2}
    )
    ready.client.post(
        "/v1/hosts/ams-1/volumes/report",
        json={"snapshots": [{"id": snapshot["id"], "status": "created", "size": 123}]},
    )
    small = ready.client.post(
        "/v1/apps/web/volumes", json={"name": "copy", "snapshot_id": snapshot["id"], "size_gb": 1}
    )
    restored = create_volume(ready, name="copy", snapshot_id=snapshot["id"], size_gb=2)

    assert snapshot["id"].startswith("vs_") and snapshot["status"] == "creating"
    assert early.status_code == 409 and "not created" in early.json()["error"]
    assert small.status_code == 400 and "at least 2 GB" in small.json()["error"]
    assert restored["state"] == "restoring" and restored["snapshot_id"] == snapshot["id"]
    assert restored["host_id"] == volume["host_id"]
    listed = ready.client.get(url).json()
    assert [(s["id"], s["status"], s["size"]) for s in listed] == [(snapshot["id"], "created", 123)]


def test_the_host_route_gives_the_agent_its_volumes_and_snapshots(ready: Api) -> None:
    volume = create_volume(ready)

    kept = ready.client.get("/v1/hosts/ams-1/volumes").json()

    assert [v["id"] for v in kept["volumes"]] == [volume["id"]] and kept["snapshots"] == []


def test_the_host_route_long_polls_until_the_hosts_view_changes(ready: Api) -> None:
    first = ready.client.get("/v1/hosts/ams-1/volumes").json()
    assert first["version"] != 0
    started = time.monotonic()
    unchanged = ready.client.get(
        "/v1/hosts/ams-1/volumes", params={"since": first["version"], "timeout": 0.3}
    ).json()
    assert unchanged["version"] == first["version"] and time.monotonic() - started >= 0.3

    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            ready.client.get,
            "/v1/hosts/ams-1/volumes",
            params={"since": first["version"], "timeout": 30},
        )
        volume = create_volume(ready)
        changed = waiting.result(timeout=10).json()  # the create answered it, not the timeout

    assert changed["version"] != first["version"]
    assert [v["id"] for v in changed["volumes"]] == [volume["id"]]


def test_an_app_with_volumes_is_not_deleted_until_they_are_destroyed(ready: Api) -> None:
    volume = create_volume(ready)

    refused = ready.client.delete("/v1/apps/web", params={"force": True})

    assert refused.status_code == 409 and volume["id"] in refused.json()["error"]
    ready.client.delete(f"/v1/apps/web/volumes/{volume['id']}")
    assert ready.client.delete("/v1/apps/web").status_code in (200, 202, 204)


def test_a_machine_update_that_drops_its_mount_frees_the_volume(ready: Api) -> None:
    volume = create_volume(ready)
    mounts = [{"volume": volume["id"], "path": "/data"}]
    machine = ready.create_machine(config={"image": IMAGE, "mounts": mounts})

    updated = ready.client.post(
        f"/v1/apps/web/machines/{machine['id']}", json={"config": {"image": IMAGE}}
    )

    assert updated.status_code == 200, updated.text
    shown = ready.client.get(f"/v1/apps/web/volumes/{volume['id']}").json()
    assert shown["attached_machine_id"] is None


def test_a_malformed_agent_report_is_a_400_and_changes_nothing(ready: Api) -> None:
    volume = create_volume(ready)

    response = ready.client.post(
        "/v1/hosts/ams-1/volumes/report",
        json={"volumes": [{"id": volume["id"], "state": "exploded"}]},
    )

    assert response.status_code == 400 and "volumes.0.state" in response.json()["error"]
    assert ready.client.get(f"/v1/apps/web/volumes/{volume['id']}").json()["state"] == "creating"


def test_the_store_refuses_to_destroy_a_volume_a_machine_claimed_meanwhile(ready: Api) -> None:
    from ferry.errors import ConflictError
    from ferry.model.volume import Volume, VolumeState

    volume = create_volume(ready)
    read_before_the_claim = Volume.model_validate(volume)
    machine = ready.create_machine(
        config={"image": IMAGE, "mounts": [{"volume": volume["id"], "path": "/data"}]}
    )

    with pytest.raises(ConflictError, match=machine["id"]):
        ready.plane.store.update_volume(
            read_before_the_claim.model_copy(update={"state": VolumeState.PENDING_DESTROY})
        )
    assert ready.client.get(f"/v1/apps/web/volumes/{volume['id']}").json()["state"] == "creating"
