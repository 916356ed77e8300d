"""``config.statics`` through the Machines API and on to the edges' route watch."""

from __future__ import annotations

from .conftest import Api

IMAGE = "127.0.0.1:5000/web@sha256:" + "a" * 64
STATIC = {"guest_path": "/app/public", "url_prefix": "/static/", "index_document": "index.html"}


def test_statics_are_kept_and_reach_the_edges(api: Api) -> None:
    api.register_host()
    api.create_app()
    created = api.client.post(
        "/v1/apps/web/machines", json={"config": {"image": IMAGE, "statics": [STATIC]}}
    )
    assert created.status_code == 200, created.text

    routes = api.client.get("/v1/routes").json()
    (machine,) = routes["machines"]
    assert machine["config"]["statics"] == [STATIC]
    assert machine["config"]["image"] == IMAGE


def test_a_bucket_or_an_unpinned_image_is_a_400_naming_it(api: Api) -> None:
    api.register_host()
    api.create_app()
    bucket = api.client.post(
        "/v1/apps/web/machines",
        json={"config": {"image": IMAGE, "statics": [{**STATIC, "tigris_bucket": "assets"}]}},
    )
    assert bucket.status_code == 400 and "tigris_bucket is not supported yet" in bucket.text
    tag = api.client.post(
        "/v1/apps/web/machines",
        json={"config": {"image": "127.0.0.1:5000/web:latest", "statics": [STATIC]}},
    )
    assert tag.status_code == 400 and "pinned by digest" in tag.text
    assert api.client.get("/v1/apps/web/machines").json() == []
