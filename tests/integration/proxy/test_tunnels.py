"""Byte tunnels: WebSocket upgrades through the HTTP edge, and raw TCP services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from ferry.proxy.limits import ProxyLimits
from ferry.proxy.server import EdgeProxy

from .harness import DOMAIN, AppBackend, TableBox, backend_entry, backends, run, running_proxy


async def upper_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A raw TCP service: answers every read with it in upper case."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
    writer.close()


async def free_public_port() -> int:
    """A loopback port nothing listens on, for a service's public port."""
    probe = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = int(probe.sockets[0].getsockname()[1])
    probe.close()
    await probe.wait_closed()
    return port


async def tcp_service(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, AppBackend, int]:
    """A raw TCP service on loopback, its route-table stand-in, and a free public port."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    fake = AppBackend("tcp")
    fake.port = server.sockets[0].getsockname()[1]
    return server, fake, await free_public_port()


async def until_listening(proxy: EdgeProxy, port: int) -> None:
    """Wait (bounded, 2 s) until the edge opened its TCP listener on ``port``."""
    for _ in range(40):
        if port in proxy.tcp.ports:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the edge did not listen on {port} within 2 s")


def test_websocket_echo_through_the_edge() -> None:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async def scenario() -> None:
        async with ws_serve(echo, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            fake = AppBackend("ws")
            fake.port = port
            box = TableBox()
            box.set(backend_entry("m-ws", "ams", fake, app="chat"))
            async with running_proxy(box) as proxy:
                assert proxy.http_address is not None
                url = f"ws://127.0.0.1:{proxy.http_address[1]}/socket"
                async with ws_connect(url, additional_headers={"Host": f"chat.{DOMAIN}"}) as ws:
                    for i in range(20):
                        await ws.send(f"hello {i}")
                        assert await ws.recv() == f"hello {i}"
                    big = "x" * 300_000
                    await ws.send(big)
                    assert await ws.recv() == big

    run(scenario())


def test_raw_tcp_service_is_spliced() -> None:
    async def scenario() -> None:
        server, fake, public = await tcp_service(upper_echo)
        try:
            box = TableBox()
            async with backends("ams-1") as (web,), running_proxy(box) as proxy:
                box.set(
                    backend_entry("m-web", "ams", web),
                    backend_entry("m-tcp", "ams", fake, app="redis", tcp_port=public),
                )
                await until_listening(proxy, public)
                assert proxy.tcp.ports == {public: "redis"}
                reader, writer = await asyncio.open_connection("127.0.0.1", public)
                try:
                    payload = b"ping " * 100_000
                    writer.write(payload)
                    got = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
                    assert got == payload.upper()
                finally:
                    writer.close()
                box.set(backend_entry("m-web", "ams", web))
                for _ in range(40):
                    if not proxy.tcp.ports:
                        break
                    await asyncio.sleep(0.05)
                assert proxy.tcp.ports == {}
        finally:
            server.close()

    run(scenario())


async def answer_at_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A raw TCP service that reads until the client half-closes, then answers and closes."""
    data = await reader.read()
    writer.write(data.upper() + b"|done")
    await writer.drain()
    writer.close()


def test_a_half_close_reaches_the_service_after_the_bytes_before_it_and_back() -> None:
    """The client's EOF must not overtake its last bytes, nor the service's close its answer."""

    async def scenario() -> None:
        server, fake, public = await tcp_service(answer_at_eof)
        box = TableBox()
        try:
            async with running_proxy(box) as proxy:
                box.set(backend_entry("m-tcp", "ams", fake, app="batch", tcp_port=public))
                await until_listening(proxy, public)
                for size in (5, 300_000):
                    reader, writer = await asyncio.open_connection("127.0.0.1", public)
                    try:
                        payload = b"x" * size
                        writer.write(payload)
                        writer.write_eof()  # straight after the bytes, in the same turn
                        got = await asyncio.wait_for(reader.read(), 5)
                        assert got == payload.upper() + b"|done"
                    finally:
                        writer.close()
        finally:
            server.close()

    run(scenario())


def test_a_tcp_apps_only_machine_is_tried_again_right_after_a_refused_connect() -> None:
    async def roundtrip(public: int) -> bytes:
        """The answer to b"ping", or b"" when the edge hung up (a close or a reset)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", public)
        try:
            writer.write(b"ping")
            return await asyncio.wait_for(reader.read(100), 5)
        except ConnectionResetError:
            return b""
        finally:
            writer.close()

    async def scenario() -> None:
        server, fake, public = await tcp_service(upper_echo)
        box = TableBox()
        limits = ProxyLimits(unhealthy_cooldown=30.0)
        try:
            async with running_proxy(box, limits=limits) as proxy:
                box.set(backend_entry("m-tcp", "ams", fake, app="redis", tcp_port=public))
                await until_listening(proxy, public)
                assert await roundtrip(public) == b"PING"
                server.close()
                await server.wait_closed()  # the database restarts
                assert await roundtrip(public) == b""  # refused upstream: the edge hangs up
                server = await asyncio.start_server(upper_echo, "127.0.0.1", fake.port)
                assert await roundtrip(public) == b"PING"  # not after a 30 s cooldown
        finally:
            server.close()

    run(scenario())
