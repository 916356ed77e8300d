"""The HTTP edge with real backends on 127.0.0.1: routing, headers, framing, limits."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from ferry.proxy.limits import ProxyLimits
from ferry.proxy.outbox import TurnWriter
from ferry.proxy.upstream import UpstreamPool

from .harness import (
    DOMAIN,
    AppBackend,
    TableBox,
    backend_entry,
    backends,
    blackhole,
    client,
    edge_client,
    raw_exchange,
    run,
    running_proxy,
)


def test_requests_go_to_the_nearest_region() -> None:
    async def scenario() -> None:
        async with backends("ams-1", "fra-1", "iad-1") as (ams, fra, iad):
            box = TableBox()
            box.set(
                backend_entry("m-iad", "iad", iad),
                backend_entry("m-fra", "fra", fra),
                backend_entry("m-ams", "ams", ams),
            )
            rtt = {"fra": 10.0, "iad": 80.0}
            async with (
                running_proxy(box, region="lhr", rtt_ms=rtt) as proxy,
                edge_client(proxy) as c,
            ):
                answers = [(await c.get("/")).text for _ in range(5)]
                assert answers == ["fra-1"] * 5
                # a client can ask for a region
                r = await c.get("/", headers={"fly-prefer-region": "iad"})
                assert r.text == "iad-1"
                r = await c.get("/", headers={"fly-force-instance-id": "m-ams"})
                assert r.text == "ams-1"
                r = await c.get("/", headers={"fly-prefer-instance-id": "m-iad"})
                assert r.text == "iad-1"
                r = await c.get("/", headers={"fly-prefer-instance-id": "gone"})
                assert r.text == "fra-1"  # unavailable: the usual rule
                r = await c.get("/", headers={"fly-force-region": "AMS"})
                assert r.text == "ams-1"
                r = await c.get("/", headers={"fly-force-region": "syd"})
                assert r.status_code == 503 and "syd" in r.text

    run(scenario())


def test_edge_adds_fly_headers_both_ways() -> None:
    async def scenario() -> None:
        async with backends("ams-1") as (ams,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", ams))
            async with running_proxy(box) as proxy:
                assert proxy.http_address is not None
                port = proxy.http_address[1]
                async with client(port) as c:
                    r = await c.get(
                        "/headers",
                        headers={"X-Forwarded-For": "10.1.1.1", "Fly-Region": "spoofed"},
                    )
        seen = json.loads(r.text)
        assert seen["fly-client-ip"] == "127.0.0.1"
        assert seen["x-forwarded-for"] == "10.1.1.1, 127.0.0.1"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-forwarded-port"] == str(port)
        assert seen["fly-forwarded-port"] == str(port)
        assert seen["fly-region"] == "ams"
        assert seen["via"] == "1.1 ferry"
        assert seen["fly-request-id"].endswith("-ams")
        assert r.headers["fly-request-id"] == seen["fly-request-id"]
        assert r.headers["server"] == "Ferry"
        assert r.headers["via"] == "1.1 ferry"

    run(scenario())


def test_unknown_host_gets_404_that_reveals_nothing() -> None:
    async def scenario() -> None:
        async with backends("ams-1") as (ams,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", ams))
            async with running_proxy(box) as proxy:
                async with edge_client(proxy, app="nope") as c:
                    r = await c.get("/")
                assert r.status_code == 404
                assert r.text.strip() == "no app is served at this address"
                # bare app name and host:port forms both route
                for host in ("web", f"web.{DOMAIN}:8080"):
                    async with httpx.AsyncClient(
                        base_url=f"http://127.0.0.1:{proxy.http_address[1]}", headers={"Host": host}
                    ) as c:
                        assert (await c.get("/")).text == "ams-1"

    run(scenario())


def test_keep_alive_reuses_client_and_upstream_connections() -> None:
    async def scenario() -> None:
        async with backends("ams-1") as (ams,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", ams))
            async with running_proxy(box) as proxy:
                assert proxy.http_address is not None
                reader, writer = await asyncio.open_connection("127.0.0.1", proxy.http_address[1])
                try:
                    for _ in range(20):
                        writer.write(b"GET / HTTP/1.1\r\nHost: web.ferry.test\r\n\r\n")
                        head = await reader.readuntil(b"\r\n\r\n")
                        assert head.startswith(b"HTTP/1.1 200")
                        assert await reader.readexactly(5) == b"ams-1"
                finally:
                    writer.close()
        assert len(ams.requests) == 20
        assert ams.connections == 1

    run(scenario())


def test_chunked_upload_and_streaming_download() -> None:
    async def scenario() -> None:
        async with backends("ams-1") as (ams,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", ams))
            async with running_proxy(box) as proxy, edge_client(proxy) as c:

                async def parts() -> object:
                    for i in range(50):
                        yield bytes([65 + i % 26]) * 40_000

                r = await c.post("/echo", content=parts())  # type: ignore[arg-type]
                assert r.status_code == 200
                assert r.headers["x-body-length"] == str(50 * 40_000)
                assert len(r.content) == 50 * 40_000
                got = 0
                async with c.stream("GET", "/stream?chunks=200&size=16384") as s:
                    assert s.headers["transfer-encoding"] == "chunked"
                    async for chunk in s.aiter_bytes():
                        got += len(chunk)
                assert got == 200 * 16384
        assert ams.requests[0].headers["transfer-encoding"] == "chunked"

    run(scenario())


def test_oversize_headers_get_431_and_others_are_still_served() -> None:
    async def scenario() -> None:
        async with backends("ams-1") as (ams,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", ams))
            async with running_proxy(box) as proxy:
                assert proxy.http_address is not None
                port = proxy.http_address[1]
                big = (
                    b"GET / HTTP/1.1\r\nHost: web.ferry.test\r\nX-Big: "
                    + b"a" * 70_000
                    + b"\r\n\r\n"
                )
                answer = await raw_exchange(port, big)
                assert answer.startswith(b"HTTP/1.1 431")
                answer = await raw_exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
                assert answer.startswith(b"HTTP/1.1 400")
                async with client(port) as c:
                    assert (await c.get("/")).text == "ams-1"

    run(scenario())


def test_slow_client_gets_408() -> None:
    async def scenario() -> None:
        async with backends("ams-1") as (ams,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", ams))
            limits = ProxyLimits(header_timeout=0.5, tick=0.1)
            async with running_proxy(box, limits=limits) as proxy:
                assert proxy.http_address is not None
                port = proxy.http_address[1]
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    writer.write(b"GET / HTTP/1.1\r\nHost: web.f")
                    async with asyncio.timeout(3):
                        answer = await reader.read()
                finally:
                    writer.close()
                assert answer.startswith(b"HTTP/1.1 408")
                async with client(port) as c:
                    assert (await c.get("/")).text == "ams-1"

    run(scenario())


def test_body_over_the_limit_gets_413() -> None:
    async def scenario() -> None:
        async with backends("ams-1") as (ams,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", ams))
            async with (
                running_proxy(box, limits=ProxyLimits(max_body_bytes=1000)) as proxy,
                edge_client(proxy) as c,
            ):
                r = await c.post("/echo", content=b"x" * 5000)
                assert r.status_code == 413
        assert ams.requests == []

    run(scenario())


def test_a_machine_that_never_accepts_is_given_up_after_the_connect_timeout() -> None:
    async def scenario() -> None:
        with blackhole() as port:
            async with backends("fra-1") as (fra,):
                hole = AppBackend("hole")  # never started: only its port is routed to
                hole.port = port
                box = TableBox()
                box.set(backend_entry("m-hole", "ams", hole), backend_entry("m-fra", "fra", fra))
                limits = ProxyLimits(connect_timeout=0.3)
                rtt = {"fra": 10.0}
                async with (
                    running_proxy(box, region="ams", rtt_ms=rtt, limits=limits) as proxy,
                    edge_client(proxy) as c,
                ):
                    began = time.monotonic()
                    r = await c.get("/")
                    waited = time.monotonic() - began
                    assert r.status_code == 200 and r.text == "fra-1"
                    assert 0.25 < waited < 2.0, waited  # the timeout, then the next machine
                    r = await c.get("/")  # the silent machine is out of rotation now
                    assert r.text == "fra-1"

    run(scenario())


def test_a_connect_cancelled_from_outside_stays_cancelled() -> None:
    async def scenario() -> None:
        with blackhole() as port:
            pool = UpstreamPool(
                max_idle_per_backend=1, idle_timeout=1.0, connect_timeout=5.0, turn=TurnWriter()
            )
            task = asyncio.get_running_loop().create_task(pool.connect(("127.0.0.1", port)))
            await asyncio.sleep(0.1)  # deliberate: the cancel must find the connect under way
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return
            raise AssertionError("the connect was not cancelled")

    run(scenario())


def test_an_apps_only_machine_is_tried_again_right_after_a_refused_connect() -> None:
    """A failed connect must not turn into seconds of 503s when there is no other machine."""

    async def scenario() -> None:
        async with backends("ams-1") as (ams,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", ams))
            limits = ProxyLimits(unhealthy_cooldown=30.0)
            async with running_proxy(box, limits=limits) as proxy, edge_client(proxy) as c:
                assert (await c.get("/")).text == "ams-1"
                port = ams.port
                await ams.stop()  # the process restarts
                down = await c.get("/")
                assert down.status_code == 502
                assert "could not connect" in down.text
                await ams.start(port)  # back, long before the 30 s cooldown ends
                back = await c.get("/")
                assert back.status_code == 200 and back.text == "ams-1"

    run(scenario())


def test_a_refused_machine_sits_out_while_its_sibling_serves() -> None:
    async def scenario() -> None:
        async with backends("ams-1", "ams-2") as (one, two):
            box = TableBox()
            box.set(backend_entry("m1", "ams", one), backend_entry("m2", "ams", two))
            async with running_proxy(box, limits=ProxyLimits(unhealthy_cooldown=30.0)) as proxy:
                await one.stop()
                async with edge_client(proxy) as c:
                    texts = [(await c.get("/")).text for _ in range(10)]
                assert texts == ["ams-2"] * 10  # a refusal sends the request to the sibling
                assert two.connections >= 1 and len(two.requests) == 10

    run(scenario())
