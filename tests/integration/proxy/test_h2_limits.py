"""HTTP/2 at the edge under bad input and slow clients: stream and connection errors, limits,
timeouts, back-pressure, shutdown. The edge keeps serving everyone else throughout."""

from __future__ import annotations

import asyncio
import ssl

import h2.errors
import pytest

from ferry.proxy.h2_stream import HIGH_WATER
from ferry.proxy.h2conn import MAX_CONCURRENT_STREAMS, H2Connection
from ferry.proxy.limits import ProxyLimits

from .h2_harness import EdgeCerts, H2Client, h2_client, h2_edge, make_certs, tls_edge
from .harness import run

PROTOCOL_ERROR = h2.errors.ErrorCodes.PROTOCOL_ERROR
CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> EdgeCerts:
    return make_certs(tmp_path_factory.mktemp("h2-limits"))


async def still_served(port: int, certs: EdgeCerts) -> int:
    async with h2_client(port, certs) as other:
        return (await other.request("GET", "/")).status


def test_a_malformed_request_resets_only_its_stream(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with h2_edge(certs) as edge:
            ams, client = edge.ams, edge.client
            bad = client.start("GET", "/", (("connection", "keep-alive"),))
            upper = client.start(
                "GET", "/",
                raw_headers=[(b":method", b"GET"), (b":scheme", b"https"),
                             (b":authority", b"web.ferry.test"), (b":path", b"/"),
                             (b"X-Upper", b"1")],
            )  # fmt: skip
            good = await client.request("GET", "/")
            await client.responses[bad].done.wait()
            await client.responses[upper].done.wait()
        assert client.responses[bad].reset == PROTOCOL_ERROR
        assert client.responses[upper].reset == PROTOCOL_ERROR
        assert good.status == 200 and client.terminated is None
        assert len(ams.requests) == 1  # the malformed ones never reached the machine

    run(scenario())


def test_garbage_and_a_missing_preface_close_only_that_connection(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with tls_edge(certs, limits=ProxyLimits(header_timeout=0.5, tick=0.1)) as edge:
            proxy, port = edge.proxy, edge.port
            ctx = certs.client_context()
            garbage_r, garbage_w = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="web.ferry.test"
            )
            garbage_w.write(b"GET / HTTP/1.1\r\nHost: nope\r\n\r\n" * 10)
            answer = await asyncio.wait_for(garbage_r.read(), 5)
            # the server's SETTINGS, then a GOAWAY (type 7) with PROTOCOL_ERROR
            assert b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" in answer
            assert answer.endswith(b"\x00\x00\x00\x01")
            silent_r, silent_w = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="web.ferry.test"
            )
            began = asyncio.get_running_loop().time()
            await asyncio.wait_for(silent_r.read(), 5)  # closed by the edge, not by us
            waited = asyncio.get_running_loop().time() - began
            assert 0.4 < waited < 2.0
            assert await still_served(port, certs) == 200
            for w in (garbage_w, silent_w):
                w.close()
            for _ in range(100):  # every connection is gone from the edge's books
                if not proxy.http.sessions and not proxy.http.connections:
                    break
                await asyncio.sleep(0.02)
            assert not proxy.http.sessions and not proxy.http.connections

    run(scenario())


def test_too_many_streams_and_huge_headers_are_refused(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with tls_edge(certs, limits=ProxyLimits(max_header_bytes=4096)) as edge:
            port = edge.port
            async with h2_client(port, certs) as client:
                # over the edge's header limit but under the connection's hard one: 431
                big = await client.request("GET", "/", (("x-big", "a" * 5000),))
                assert big.status == 431 and client.terminated is None
                # over the hard limit (twice max_header_bytes): the connection goes
                client.start("GET", "/", (("x-huge", "a" * 9000),))
                await asyncio.wait_for(client.closed.wait(), 5)
                assert client.terminated is not None
            async with h2_client(port, certs) as flood:
                flood.conn.remote_settings.max_concurrent_streams = 1000  # ignore the limit
                for _ in range(MAX_CONCURRENT_STREAMS + 1):
                    flood.start("GET", "/slow?s=2")
                await asyncio.wait_for(flood.closed.wait(), 5)
                assert flood.terminated is not None
                assert flood.terminated.error_code == PROTOCOL_ERROR
            assert await still_served(port, certs) == 200

    run(scenario())


def test_rapid_resets_end_the_connection(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with h2_edge(certs) as edge:
            port, client = edge.port, edge.client
            for _ in range(400):
                if client.terminated is not None or client.closed.is_set():
                    break
                sid = client.start("GET", "/slow?s=1")
                client.conn.reset_stream(sid, 8)
                client.flush()
                await asyncio.sleep(0)
            await asyncio.wait_for(client.closed.wait(), 5)
            assert client.terminated is not None
            assert client.terminated.error_code == CALM
            assert await still_served(port, certs) == 200

    run(scenario())


def test_a_slow_reader_holds_the_machine_back_with_bounded_memory(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with h2_edge(certs) as edge:
            ams, proxy, client = edge.ams, edge.proxy, edge.client
            client.read_window = False  # take one window's worth, then stop reading
            sid = client.start("GET", "/stream?chunks=400&size=65536")  # 25 MiB
            response = client.responses[sid]
            while ams.in_flight < 1:
                await asyncio.sleep(0.01)
            (conn,) = [s for s in proxy.http.sessions if isinstance(s, H2Connection)]

            def waiting() -> int:
                return sum(s.outq_bytes for s in conn.streams.values())

            for _ in range(100):  # until the edge has paused the machine
                await asyncio.sleep(0.02)
                if any(s.write_paused for s in conn.streams.values()):
                    break
            await asyncio.sleep(0.3)
            held = waiting()
            await asyncio.sleep(0.5)
            assert waiting() == held  # nothing more was read from the machine
            # at most HIGH_WATER plus what one loop turn read before the pause
            assert HIGH_WATER < held < 4 * 1024 * 1024
            assert len(response.body) <= 65535
            assert ams.in_flight == 1  # the machine waits to send the rest
            client.open_window()
            await asyncio.wait_for(response.done.wait(), 20)
        assert response.status == 200 and len(response.body) == 400 * 65536

    run(scenario())


def test_a_client_that_never_opens_its_window_is_dropped(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with h2_edge(certs, limits=ProxyLimits(idle_timeout=0.5, tick=0.1)) as edge:
            proxy, client = edge.proxy, edge.client
            client.read_window = False
            client.start("GET", "/stream?chunks=4&size=65536")  # more than one window
            began = asyncio.get_running_loop().time()
            await asyncio.wait_for(client.closed.wait(), 5)
            waited = asyncio.get_running_loop().time() - began
            assert client.terminated is not None and client.terminated.error_code == 0
            assert 0.4 < waited < 2.0
            assert not proxy.http.sessions and not proxy.http.connections
            assert proxy.load.load.get("m1", 0) == 0

    run(scenario())


def test_expect_continue_head_ping_and_shutdown(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with tls_edge(certs) as edge:
            proxy, port = edge.proxy, edge.port
            client = await H2Client().connect(port, certs)
            sid = client.start(
                "POST", "/echo", (("expect", "100-continue"), ("content-length", "4")),
                end_stream=False,
            )  # fmt: skip
            while not client.responses[sid].interim:
                await asyncio.sleep(0.01)
            await client.send_body(sid, b"ping")
            await client.responses[sid].done.wait()
            head = await client.request("HEAD", "/")
            client.conn.ping(b"ferry-h2")
            client.flush()
            for _ in range(100):
                if client.pongs:
                    break
                await asyncio.sleep(0.01)
            assert client.pongs == [b"ferry-h2"]
            await proxy.stop()  # shutdown: GOAWAY(NO_ERROR), then close
            await asyncio.wait_for(client.closed.wait(), 5)
            await client.close()
        echo = client.responses[sid]
        assert echo.interim == [100] and echo.status == 200 and echo.body == b"ping"
        assert head.status == 200 and head.body == b"" and head.headers["content-length"] == "5"
        assert client.terminated is not None and client.terminated.error_code == 0

    run(scenario())


def test_a_stream_gets_the_edge_timeouts_and_error_pages(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with h2_edge(certs, limits=ProxyLimits(response_timeout=0.5, tick=0.1)) as edge:
            box, client = edge.box, edge.client
            late, quick = await asyncio.gather(
                client.request("GET", "/slow?s=3"), client.request("GET", "/slow?s=0.1")
            )
            box.set()  # the app is gone from the table
            gone = await client.request("GET", "/")
        assert late.status == 504 and b"did not answer in time" in late.body
        assert late.headers["fly-request-id"].endswith("-ams")
        assert quick.status == 200
        assert gone.status == 404

    run(scenario())


def test_a_body_over_the_limit_gets_413_and_the_connection_goes_on(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with h2_edge(certs, limits=ProxyLimits(max_body_bytes=1000)) as edge:
            ams, client = edge.ams, edge.client
            declared = client.start(
                "POST", "/echo", (("content-length", "5000"),), end_stream=False
            )
            streamed = client.start("POST", "/echo", end_stream=False)
            await client.send_body(streamed, b"x" * 5000, end=False)
            for sid in (declared, streamed):
                await asyncio.wait_for(client.responses[sid].done.wait(), 5)
            after = await client.request("POST", "/echo", body=b"small")
        for sid in (declared, streamed):
            answer = client.responses[sid]
            assert answer.status == 413 and b"larger than 1000 bytes" in answer.body
        assert after.status == 200 and after.body == b"small"
        assert [r.body for r in ams.requests] == [b"small"]

    run(scenario())


def test_http11_over_the_same_listener_is_forwarded_as_https(certs: EdgeCerts) -> None:
    async def scenario() -> bytes:
        async with tls_edge(certs) as edge:
            port = edge.port
            ctx: ssl.SSLContext = certs.client_context(("http/1.1",))
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="web.ferry.test"
            )
            writer.write(
                b"GET /headers HTTP/1.1\r\nHost: web.ferry.test\r\nConnection: close\r\n\r\n"
            )
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return answer

    answer = run(scenario())
    assert answer.startswith(b"HTTP/1.1 200") and b'"x-forwarded-proto": "https"' in answer
