"""One HTTP/2 stream through the edge: a ``ClientConnection`` carrying exactly one request.

Every stream gets its own ``ClientConnection`` — the edge's HTTP/1.1 client
side — and ``H2Stream`` is that connection's transport. The stream's request
is written to it as HTTP/1.1 (``h2_request``), so routing, limits, statics,
Fly-Replay, wake-on-request, retries, error pages, request ids, timeouts and
metrics are those of every other request, from the same code. What the
exchange writes back is read by a ``ResponseReader`` into HEADERS and DATA
frames on the ``H2Connection``.

Back-pressure both ways, memory bounded by the flow-control windows:
- request body: DATA is handed to the connection only while it reads
  (``pause_reading`` when the machine's socket is full); only then is it
  acknowledged, so the client's window closes while the machine is slow;
- response body: bytes the client's window does not yet allow wait here;
  past ``HIGH_WATER`` the exchange is told to stop reading from the machine
  (``pause_writing``), below ``LOW_WATER`` to go on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

import h2.exceptions
import httptools

from ferry.proxy.connection import ClientConnection
from ferry.proxy.h2_response import ResponseReader

if TYPE_CHECKING:
    from ferry.proxy.h2conn import H2Connection

__all__ = ["HIGH_WATER", "LOW_WATER", "H2Stream"]

HIGH_WATER = 256 * 1024  # response bytes waiting for the client's window: pause the machine
LOW_WATER = 64 * 1024
_TERMINATOR = b"0\r\n\r\n"


class H2Stream:
    """The transport of one stream's ``ClientConnection``; owned by its ``H2Connection``."""

    __slots__ = (
        "chunked", "closed", "conn", "ended_out", "held", "http", "outq",
        "outq_bytes", "reader", "request_done", "reset", "stream_id", "write_paused",
    )  # fmt: skip

    def __init__(
        self, conn: H2Connection, stream_id: int, *, chunked: bool, head_only: bool
    ) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.chunked = chunked  # the request body is chunk-encoded for the edge's parser
        self.reader = ResponseReader(self, head_only=head_only)
        # ``tls``: a client's HTTP/2 comes over TLS: forwarded as X-Forwarded-Proto: https.
        self.http = ClientConnection(conn.edge, tls=conn.tls)
        self.held: list[tuple[bytes, int]] | None = None  # DATA while reading is paused
        self.outq: deque[bytes] = deque()  # response body the client's window does not allow yet
        self.outq_bytes = 0
        self.request_done = False  # END_STREAM came from the client
        self.ended_out = False  # END_STREAM or RST_STREAM was sent
        self.closed = False  # the ClientConnection closed its side (its answer is written)
        self.reset = False
        self.write_paused = False  # the exchange was told to stop reading from the machine

    def start(self, head: bytes) -> None:
        """Hand the request head to the edge (the body and its end follow as they come)."""
        self.http.connection_made(self)  # type: ignore[arg-type]
        self.http.data_received(head)

    # the client's side ------------------------------------------------------------
    def data(self, data: bytes, flow_length: int) -> None:
        """A DATA frame's payload; acknowledged once handed to the exchange."""
        if self.closed or self.reset:
            self.conn.acknowledge(flow_length, self.stream_id)
            return
        if self.held is not None:
            self.held.append((data, flow_length))
            return
        self._deliver(data, flow_length)

    def _deliver(self, data: bytes, flow_length: int) -> None:
        if data and not self.closed:  # answered (a 413 …) while the body still came: dropped
            self.http.data_received(b"%x\r\n%b\r\n" % (len(data), data) if self.chunked else data)
        self.conn.acknowledge(flow_length, self.stream_id)

    def request_ended(self) -> None:
        """END_STREAM from the client."""
        self.request_done = True
        if self.held is not None:
            self.held.append((b"", -1))
        elif self.chunked and not self.closed:
            self.http.data_received(_TERMINATOR)

    def client_reset(self) -> None:
        """The client reset the stream: the exchange is cancelled, nothing more is sent."""
        self.reset = self.ended_out = True
        self.outq.clear()
        self.outq_bytes = 0
        self._lost()

    def connection_lost(self) -> None:
        """The HTTP/2 connection is gone."""
        self.ended_out = True
        self._lost()

    def _lost(self) -> None:
        if not self.closed:
            self.closed = True
            self.http.connection_lost(None)

    # asyncio transport, as the ClientConnection uses it ----------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.conn.extra_info(name, default)

    def pause_reading(self) -> None:
        if self.held is None:
            self.held = []

    def resume_reading(self) -> None:
        held, self.held = self.held, None
        for data, flow_length in held or ():
            if self.held is not None:  # paused again while delivering
                self.held.append((data, flow_length))
            elif flow_length < 0:
                self.request_ended()
            else:
                self._deliver(data, flow_length)

    def write(self, data: bytes) -> None:
        if self.ended_out:
            return
        # Called from the edge's end-of-turn flush: nothing may escape to the other
        # connections' writes. A callback's failure reaches here as a parser error.
        try:
            self.reader.write(data)
            if self.outq or self.reader.done:
                # Once per write: a response that ended in it ends with its last DATA frame.
                self.conn.pump(self)
        except httptools.HttpParserError:
            self.abort()
        except h2.exceptions.ProtocolError:
            self.conn.broken()

    def close(self) -> None:
        """The ClientConnection is done: its answer is complete, or it never will be."""
        if self.closed:
            return
        self.closed = True
        asyncio.get_running_loop().call_soon(self.http.connection_lost, None)
        if not self.reader.done:
            self.conn.reset_stream(self, 2)  # INTERNAL_ERROR: the answer is truncated
        else:
            self.conn.pump(self)  # sends END_STREAM, and RST_STREAM(NO_ERROR) if need be

    def abort(self) -> None:
        if self.closed and self.ended_out:
            return
        was_closed, self.closed = self.closed, True
        self.outq.clear()
        self.outq_bytes = 0
        if not was_closed:
            asyncio.get_running_loop().call_soon(self.http.connection_lost, None)
        self.conn.reset_stream(self, 2)

    def is_closing(self) -> bool:
        return self.closed

    # ResponseSink ---------------------------------------------------------------------
    def interim(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.conn.send_headers(self, headers, False)

    def head(self, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        self.conn.send_headers(self, headers, end_stream)

    def body(self, data: bytes) -> None:
        self.outq.append(data)  # sent by ``write`` once the bytes written are parsed
        self.outq_bytes += len(data)

    def complete(self) -> None:
        pass  # ``write`` pumps: the end goes with the last DATA frame

    # the client's window ----------------------------------------------------------------
    def sent(self, size: int) -> None:
        """``size`` queued bytes left for the client: maybe let the machine go on."""
        self.outq_bytes -= size
        if self.write_paused and self.outq_bytes <= LOW_WATER and not self.conn.write_paused:
            self.write_paused = False
            self.http.resume_writing()

    def check_backlog(self) -> None:
        """Too much waits for the client (or its socket is full): pause the machine."""
        if not self.write_paused and (self.outq_bytes > HIGH_WATER or self.conn.write_paused):
            self.write_paused = True
            self.http.pause_writing()
