"""The 5432 forwarder of a Postgres member (ferry.postgres.primary_proxy), on loopback:
a connection reaches whichever address Patroni names as the running leader, and the
bytes arrive whole in both directions, half-close included."""

from __future__ import annotations

import asyncio

from ferry.postgres.primary_proxy import PrimaryForwarder


async def _echo_server(tag: bytes) -> tuple[asyncio.Server, int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(tag + await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _front(forwarder: PrimaryForwarder) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(forwarder.protocol, "127.0.0.1", 0)


async def _ask(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


def test_connections_follow_the_leader_and_are_closed_without_one() -> None:
    async def scenario() -> list[bytes]:
        old, old_port = await _echo_server(b"old:")
        new, new_port = await _echo_server(b"new:")
        leaders: list[tuple[str, int] | None] = [("127.0.0.1", old_port)]
        forwarder = PrimaryForwarder(fetch=lambda: leaders[0])
        await forwarder.refresh()
        front = await _front(forwarder)
        port = front.sockets[0].getsockname()[1]
        answers = [await _ask(port)]
        # The old primary dies and Patroni names the new one: the failed connect makes
        # the forwarder ask again at once, without waiting for its next refresh.
        old.close()
        await old.wait_closed()
        leaders[0] = ("127.0.0.1", new_port)
        answers.append(await _ask(port))
        leaders[0] = None  # no leader (cut off from the DCS): the client is closed on
        forwarder.target = None
        answers.append(await _ask(port))
        for server in (new, front):
            server.close()
            await server.wait_closed()
        return answers

    assert asyncio.run(scenario()) == [b"old:hello\n", b"new:hello\n", b""]


def test_large_transfers_arrive_whole_and_a_half_close_is_passed_on() -> None:
    """The client sends 8 MB and half-closes; the server answers only after that EOF
    with 8 MB of its own: both arrive byte for byte (back-pressure included)."""
    sent = bytes(range(256)) * (8 * 4096)
    answer = sent[::-1]

    async def scenario() -> tuple[bytes, bytes]:
        received: list[bytes] = []

        async def at_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.append(await reader.read())  # up to the client's EOF
            writer.write(answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(at_eof, "127.0.0.1", 0)
        forwarder = PrimaryForwarder(
            fetch=lambda: ("127.0.0.1", server.sockets[0].getsockname()[1])
        )
        await forwarder.refresh()
        front = await _front(forwarder)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", front.sockets[0].getsockname()[1]
        )
        writer.write(sent)
        writer.write_eof()
        back = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        for each in (server, front):
            each.close()
            await each.wait_closed()
        return received[0], back

    got, back = asyncio.run(scenario())
    assert got == sent
    assert back == answer
