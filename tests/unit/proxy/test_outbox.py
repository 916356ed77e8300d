"""The edge's held writes: sent together at the end of the loop turn, in order, never lost."""

from __future__ import annotations

import asyncio

from ferry.proxy.outbox import Outbox, TurnWriter


class Wire:
    """A transport's ``write``: records every send as one item."""

    def __init__(self, *, closed: bool = False) -> None:
        self.sends: list[bytes] = []
        self.closed = closed

    def write(self, data: bytes) -> None:
        if self.closed:
            raise RuntimeError("unable to perform operation: the handler is closed")
        self.sends.append(data)


def test_writes_of_one_turn_leave_together_at_its_end_in_order() -> None:
    async def scenario() -> None:
        turn = TurnWriter()
        machine, client = Wire(), Wire()
        to_machine, to_client = Outbox(turn, machine.write), Outbox(turn, client.write)
        to_machine.put(b"GET / HTTP/1.1\r\n\r\n")
        to_client.put(b"HTTP/1.1 200 OK\r\n\r\n")
        to_client.put(b"hello")
        assert machine.sends == [] and client.sends == []  # nothing leaves mid-turn
        await asyncio.sleep(0)
        assert machine.sends == [b"GET / HTTP/1.1\r\n\r\n"]
        assert client.sends == [b"HTTP/1.1 200 OK\r\n\r\nhello"]  # one send per turn
        to_client.put(b"next")
        await asyncio.sleep(0)
        assert client.sends[-1] == b"next"

    asyncio.run(scenario())


def test_send_now_hands_bytes_over_before_a_close_and_the_turn_does_not_repeat_them() -> None:
    async def scenario() -> None:
        turn = TurnWriter()
        wire = Wire()
        outbox = Outbox(turn, wire.write)
        outbox.put(b"goodbye")
        outbox.send_now()
        assert wire.sends == [b"goodbye"]
        await asyncio.sleep(0)
        assert wire.sends == [b"goodbye"]

    asyncio.run(scenario())


def test_dropped_bytes_are_not_sent() -> None:
    async def scenario() -> None:
        turn = TurnWriter()
        wire = Wire()
        outbox = Outbox(turn, wire.write)
        outbox.put(b"for a client that hung up")
        outbox.drop()
        await asyncio.sleep(0)
        assert wire.sends == []

    asyncio.run(scenario())


def test_a_closed_transport_does_not_keep_the_others_bytes_from_leaving() -> None:
    async def scenario() -> None:
        turn = TurnWriter()
        gone, alive = Wire(closed=True), Wire()
        Outbox(turn, gone.write).put(b"lost")
        Outbox(turn, alive.write).put(b"kept")
        await asyncio.sleep(0)
        assert alive.sends == [b"kept"]

    asyncio.run(scenario())
