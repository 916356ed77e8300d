"""The edge's writes, held to the end of the event loop's turn and then sent together.

Why: a write sent at once wakes its reader — the machine for a request, the
client for an answer — and under load the edge serves a dozen connections
in one loop turn, so a machine would wake a dozen times to serve one request
each. Held to the end of the turn, the writes of every exchange served in
that turn reach their readers together: each wakes once for the lot, as
with HAProxy, which sends after its I/O pass. It also joins all of one
connection's writes of a turn (an answer's head and body) into one send.
Measured (bench/RESULTS.md, fourth pass): the backend's ``epoll_wait`` calls
per request fall from 0.53 to between 0.13 and 0.15 and the edge serves 3 to 8% more
requests per second on the same cores; the bytes wait at most one turn.

Contract: a connection puts its bytes in its ``Outbox``; the ``TurnWriter``
sends every outbox holding bytes once the current loop turn's callbacks have
run. Before closing its transport a connection calls ``send_now`` (a
graceful close sends what was written first); when the transport is aborted
or lost it calls ``drop``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Outbox", "TurnWriter"]


class TurnWriter:
    """Sends the held writes of every connection of one edge at the end of the loop's turn."""

    __slots__ = ("held", "scheduled")

    def __init__(self) -> None:
        self.held: list[Outbox] = []
        self.scheduled = False

    def hold(self, outbox: Outbox) -> None:
        """Remember an outbox that just got its first bytes of this turn."""
        self.held.append(outbox)
        if not self.scheduled:
            self.scheduled = True
            # call_soon runs after every I/O callback of this turn, before the next poll.
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Send every held outbox's bytes (one ``transport.write`` each)."""
        self.scheduled = False
        held, self.held = self.held, []
        for outbox in held:
            outbox.send_now()


class Outbox:
    """One connection's unsent bytes of this turn."""

    __slots__ = ("chunks", "turn", "write")

    def __init__(self, turn: TurnWriter, write: Callable[[bytes], None]) -> None:
        self.turn = turn
        self.write = write  # the transport's write
        self.chunks: list[bytes] = []

    def put(self, data: bytes) -> None:
        """Queue bytes; they leave at the end of this turn, after those queued before."""
        chunks = self.chunks
        if not chunks:
            self.turn.hold(self)
        chunks.append(data)

    def send_now(self) -> None:
        """Hand the held bytes to the transport now (before closing it); idempotent."""
        chunks = self.chunks
        if not chunks:
            return
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        try:
            self.write(data)
        except RuntimeError:
            # The transport was closed by a path that did not drop its bytes:
            # nobody can read them any more, and the other outboxes must still go.
            return

    def drop(self) -> None:
        """Forget the held bytes: the connection was aborted or lost."""
        self.chunks.clear()
