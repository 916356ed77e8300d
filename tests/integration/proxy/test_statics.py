"""``[[statics]]`` through a real edge: files of a real registry image, misses to the app."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ferry.model.machine_statics import StaticConfig
from ferry.proxy.routes import AppStatics, RouteTable
from ferry.proxy.static_cache import StaticCache
from ferry.proxy.statics import StaticsServer

from ..images import RunningRegistry, build_busybox_image, push_image
from .harness import (
    TableBox,
    backend_entry,
    backends,
    edge_client,
    raw_exchange,
    run,
    running_proxy,
)

CSS = "body { color: teal }\n"
BIG = "0123456789abcdef" * 524288  # 8 MiB: read in chunks, off the event loop


@pytest.fixture(scope="module")
def site_image(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    layout = build_busybox_image(
        tmp_path_factory.mktemp("statics-image"),
        files={
            "app/public/css/site.css": CSS,
            "app/public/docs/index.html": "<h1>docs</h1>\n",
            "app/public/big.txt": BIG,
            "app/secret.txt": "not served\n",
        },
    )
    return push_image(layout, registry.address, "statics-site")


async def slow_read(address: tuple[str, int] | None, path: str) -> bytes:
    """GET ``path`` and read nothing for a while (the edge's socket fills and it waits),
    then the whole body."""
    assert address is not None
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: web.ferry.test\r\n\r\n".encode())
        await asyncio.sleep(0.3)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        return await reader.readexactly(length)
    finally:
        writer.close()


def statics_table(box: TableBox, image: str) -> None:
    statics = (
        StaticConfig(guest_path="/app/public", url_prefix="/static/", index_document="index.html"),
    )
    site = AppStatics(image, image.rpartition("@")[2], statics)
    box.table = RouteTable(box.table.version + 1, box.table.apps, {"web": site})


def test_static_files_are_served_by_the_edge_with_caching_headers(
    site_image: str, registry: RunningRegistry, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with backends("app") as (app,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", app))
            statics_table(box, site_image)
            cache = StaticCache(tmp_path / "statics", insecure_registries=[registry.address])
            server = StaticsServer(box, cache)
            async with running_proxy(box, statics=server) as proxy, edge_client(proxy) as http:
                css = await http.get("/static/css/site.css")
                assert css.status_code == 200 and css.text == CSS
                assert css.headers["content-type"] == "text/css; charset=utf-8"
                assert css.headers["cache-control"] == "public, max-age=3600"
                assert css.headers["etag"].startswith('"')
                assert css.headers["last-modified"].endswith("GMT")
                assert css.headers["fly-request-id"] and "x-backend" not in css.headers

                again = await http.get(
                    "/static/css/site.css", headers={"If-None-Match": css.headers["etag"]}
                )
                assert again.status_code == 304 and again.content == b""
                assert again.headers["etag"] == css.headers["etag"]

                head = await http.head("/static/css/site.css")
                assert head.status_code == 200 and head.content == b""
                assert head.headers["content-length"] == str(len(CSS))

                index = await http.get("/static/docs/")
                assert index.status_code == 200 and index.text == "<h1>docs</h1>\n"
                assert index.headers["content-type"] == "text/html; charset=utf-8"

                big = await http.get("/static/big.txt")
                assert big.status_code == 200 and big.text == BIG

                assert await slow_read(proxy.http_address, "/static/big.txt") == BIG.encode()

                miss = await http.get("/static/nothing.js")
                assert miss.status_code == 200 and miss.headers["x-backend"] == "app"
                posted = await http.post("/static/css/site.css", content=b"x")
                assert posted.headers["x-backend"] == "app"  # only GET and HEAD are static
                outside = await http.get("/app/secret.txt")
                assert outside.headers["x-backend"] == "app"
                assert [r.path for r in app.requests] == [
                    "/static/nothing.js",
                    "/static/css/site.css",
                    "/app/secret.txt",
                ]

                assert proxy.http_address is not None
                traversal = await raw_exchange(
                    proxy.http_address[1],
                    b"GET /static/%2e%2e/secret.txt HTTP/1.1\r\nHost: web.ferry.test\r\n\r\n",
                )
                assert traversal.startswith(b"HTTP/1.1 400")
                assert len(app.requests) == 3

                # Known by now: answered from memory, on a connection kept open.
                get = b"GET /static/css/site.css HTTP/1.1\r\nHost: web.ferry.test\r\n"
                both = await raw_exchange(
                    proxy.http_address[1], get + b"\r\n" + get + b"Connection: close\r\n\r\n"
                )
                assert both.count(b"HTTP/1.1 200 OK") == 2 and both.count(CSS.encode()) == 2

    run(scenario())


def test_the_copy_on_disk_serves_without_the_registry(
    site_image: str, registry: RunningRegistry, tmp_path: Path
) -> None:
    async def fetch_then_restart() -> None:
        async with backends("app") as (app,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", app))
            statics_table(box, site_image)
            first = StaticCache(tmp_path / "statics", insecure_registries=[registry.address])
            async with (
                running_proxy(box, statics=StaticsServer(box, first)) as proxy,
                edge_client(proxy) as http,
            ):
                assert (await http.get("/static/css/site.css")).text == CSS
            # A new edge process on the same state dir that cannot reach the registry
            # (it would speak TLS to this plain-HTTP one): the copy on disk is enough.
            offline = StaticCache(tmp_path / "statics")
            async with (
                running_proxy(box, statics=StaticsServer(box, offline)) as proxy,
                edge_client(proxy) as http,
            ):
                css = await http.get("/static/css/site.css")
                assert css.status_code == 200 and css.text == CSS
            # An image that is not in the registry: requests go to the app.
            unknown = site_image.rpartition("@")[0] + "@sha256:" + "0" * 64
            statics_table(box, unknown)
            async with (
                running_proxy(box, statics=StaticsServer(box, first)) as proxy,
                edge_client(proxy) as http,
            ):
                fallback = await http.get("/static/css/site.css")
                assert fallback.status_code == 200 and fallback.headers["x-backend"] == "app"

    run(fetch_then_restart(), timeout=60)
