"""Connections from the edge to machines: one ``asyncio.Protocol`` each, pooled per machine.

An ``UpstreamConnection`` parses responses with httptools and hands every
event to the ``Exchange`` it is lent to. Idle keep-alive
connections wait in the ``UpstreamPool`` (bounded per machine, closed after
an idle timeout); a request takes one or opens a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import httptools

from ferry.proxy.outbox import Outbox, TurnWriter

if TYPE_CHECKING:
    from ferry.proxy.exchange import Exchange

__all__ = ["UpstreamConnection", "UpstreamPool"]

BackendKey = tuple[str, int]  # (address, port)


class UpstreamConnection(asyncio.Protocol):
    """One TCP connection to a machine; lent to one exchange at a time."""

    # fmt: off
    __slots__ = (
        "closed", "feed", "get_status", "headers", "idle_since", "key", "listener", "outbox",
        "parser", "pool", "reason", "reusable", "reused", "transport", "tunnel",
    )
    # fmt: on
    outbox: Outbox  # made in connection_made, around the transport's write

    def __init__(self, pool: UpstreamPool, key: BackendKey) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        # The exchange it is lent to: a concrete class, not a Protocol, so that the
        # compiled hot path calls it directly (tests drive real exchanges).
        self.listener: Exchange | None = None
        self.parser = httptools.HttpResponseParser(self)
        # Apps (CGI scripts, busybox httpd) often end header lines with a bare LF;
        # curl and browsers accept that from a server, so the edge does too.
        # Requests from clients stay strict.
        self.parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        # Bound once: no method lookup per request on the hot path.
        self.feed: Callable[[bytes], None] = self.parser.feed_data
        self.get_status: Callable[[], int] = self.parser.get_status_code
        self.reusable: Callable[[], bool] = self.parser.should_keep_alive
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.closed = False
        self.reused = False
        self.tunnel = False
        self.idle_since = 0.0

    # asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.outbox = Outbox(self.pool.turn, transport.write)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        listener = self.listener
        if listener is None:
            self.close()  # an idle connection must not talk: it cannot be reused safely
            return
        if self.tunnel:
            listener.upstream_tunnel_data(data)
            return
        try:
            self.feed(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self.listener is not None:
                self.listener.upstream_upgraded(self, data[upgrade.args[0] :])
        except httptools.HttpParserError:
            self.close()  # connection_lost tells the listener

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.outbox.drop()
        self.pool.discard(self)
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.upstream_lost(self)

    def pause_writing(self) -> None:
        if self.listener is not None:
            self.listener.upstream_write_paused(True)

    def resume_writing(self) -> None:
        if self.listener is not None:
            self.listener.upstream_write_paused(False)

    # httptools callbacks ----------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        reason, self.reason = self.reason, b""
        if self.listener is not None:
            self.listener.upstream_head(self, self.get_status(), reason, self.headers)
        self.headers.clear()  # the head was built from it; the list serves the next answer

    def on_body(self, body: bytes) -> None:
        if self.listener is not None:
            self.listener.upstream_body(body)

    def on_message_complete(self) -> None:
        if self.listener is not None:
            self.listener.upstream_complete(self)

    # used by the exchange ---------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.outbox.put(data)  # sent at the end of this loop turn

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        """Close now; idempotent. ``connection_lost`` follows on the loop."""
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.outbox.send_now()
                self.transport.close()

    def detach_and_close(self) -> None:
        """Close without telling the current listener (it gave the connection up)."""
        self.listener = None
        self.close()


class _Expiry:
    """Cancels a connecting task when its timer fires, and remembers that it did."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[None]) -> None:
        self.task = task
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        self.task.cancel()


class UpstreamPool:
    """Idle keep-alive connections per machine address; single-threaded."""

    def __init__(
        self,
        *,
        max_idle_per_backend: int,
        idle_timeout: float,
        connect_timeout: float,
        turn: TurnWriter,
    ) -> None:
        self.turn = turn  # its connections' writes leave at the end of the loop turn
        self._idle: dict[BackendKey, list[UpstreamConnection]] = {}
        self._max_idle = max_idle_per_backend
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout

    def take(self, key: BackendKey) -> UpstreamConnection | None:
        """An idle connection to ``key`` (most recently used first), or None."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    def give(self, conn: UpstreamConnection, now: float) -> None:
        """Return a cleanly finished connection; closes it when the pool is full."""
        conn.listener = None
        if conn.closed or conn.tunnel:
            conn.close()
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = now
        idle.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    async def connect(self, key: BackendKey) -> UpstreamConnection:
        """Open a new connection; raises ``OSError`` or ``TimeoutError`` (connect timeout).

        Must run in its own task (it cancels that task when the time is up).
        The timeout is one loop timer, not ``asyncio.timeout``: that runs as
        interpreted Python and cost more than the connect itself for apps that
        close every connection.
        """
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        expiry = _Expiry(task)
        timer = loop.call_later(self._connect_timeout, expiry.fire)
        try:
            _, conn = await loop.create_connection(
                lambda: UpstreamConnection(self, key), key[0], key[1]
            )
        except asyncio.CancelledError:
            if not expiry.fired:
                raise
            task.uncancel()
            raise TimeoutError(f"connecting to {key[0]}:{key[1]} timed out") from None
        finally:
            timer.cancel()
        return conn

    def purge(self, key: BackendKey) -> None:
        """Close every idle connection to ``key``."""
        for conn in self._idle.pop(key, ()):
            conn.close()

    def sweep(self, now: float) -> None:
        """Close connections idle longer than the idle timeout."""
        limit = now - self._idle_timeout
        for key, idle in list(self._idle.items()):
            keep = [c for c in idle if c.idle_since >= limit and not c.closed]
            for conn in idle:
                if conn not in keep:
                    conn.close()
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]

    def close_all(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    def idle_count(self, key: BackendKey | None = None) -> int:
        if key is not None:
            return len(self._idle.get(key, ()))
        return sum(len(v) for v in self._idle.values())
