"""HTTP/2 from clients of the edge: one ``asyncio.Protocol`` per connection, on the ``h2`` library.

The TLS listener hands a connection here when ALPN chose ``h2``. Each
stream is one request through the edge exactly as an HTTP/1.1 request is
(``ferry.proxy.h2_stream``): same routing, limits, Fly-Replay, wake, statics,
metrics, request ids, error pages and timeouts, with
``X-Forwarded-Proto: https`` (``tls``: a client's HTTP/2 here is always over
TLS). This module speaks the protocol: settings, streams, flow control,
RST_STREAM, GOAWAY, ping (answered by ``h2``), and the defences:

- a malformed request (RFC 9113 8.1.1: connection-specific or uppercase
  fields, bad pseudo-headers) resets only its stream with PROTOCOL_ERROR;
- garbage, a bad preface or any connection error: GOAWAY with h2's error
  code, then close; a client that never sends its preface and first request
  within ``header_timeout`` is closed, as is one idle past ``idle_timeout``;
- more than ``MAX_CONCURRENT_STREAMS`` open streams is a connection error
  (h2 raises before decoding the headers, so no stream error can be sent);
  header lists over ``MAX_HEADER_LIST_SIZE`` likewise (ENHANCE_YOUR_CALM);
  lists over the edge's ``max_header_bytes`` get a 431 on their stream;
- streams reset by the client faster than ``RESET_RATE`` per second beyond
  a burst of ``RESET_BURST`` (the "rapid reset" attack): ENHANCE_YOUR_CALM;
- while the client does not read (its socket buffer is full) the edge stops
  reading from it too, so pings and settings cannot pile answers up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from ferry.proxy.h2_request import MalformedRequest, translate_request
from ferry.proxy.h2_stream import H2Stream

if TYPE_CHECKING:
    from ferry.proxy.http import HttpEdge

log = logging.getLogger(__name__)

__all__ = ["CONNECTION_WINDOW", "MAX_CONCURRENT_STREAMS", "STREAM_WINDOW", "H2Connection"]

MAX_CONCURRENT_STREAMS = 100
STREAM_WINDOW = 256 * 1024  # request body a stream may have in flight to the edge
CONNECTION_WINDOW = 1024 * 1024  # ... and all streams of a connection together
RESET_BURST = 200.0
RESET_RATE = 50.0  # client resets per second allowed after the burst
_NO_ERROR, _PROTOCOL_ERROR, _INTERNAL_ERROR, _REFUSED_STREAM, _CALM = 0, 1, 2, 7, 11


class H2Connection(asyncio.Protocol):
    """One client's HTTP/2 connection (after TLS with ALPN ``h2``); event-loop only.

    A TLS listener hands a connection over once the handshake chose ``h2``:
    ``transport.set_protocol(conn)`` then ``conn.connection_made(transport)``
    (the server's SETTINGS go out at once). Registered in ``edge.sessions``
    while open: the edge's sweep calls ``check_deadline`` and its shutdown
    ``close`` (GOAWAY, then close).
    """

    #: Requests over HTTP/2 from clients come over TLS: X-Forwarded-Proto is https.
    tls: bool = True

    def __init__(self, edge: HttpEdge) -> None:
        self.edge = edge
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            # Checked by ``translate_request`` instead: h2 would make a malformed
            # request a connection error, RFC 9113 a stream error.
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            # ``h2_response_headers`` already lowercases and drops connection fields.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = h2.connection.H2Connection(config=config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.peername: Any = None
        self.write_paused = False
        self.flush_scheduled = False
        self.closing = False
        self.goaway_received = False
        self.deadline = 0.0
        self.reset_budget = RESET_BURST
        self.reset_at = 0.0
        self.sent_at = 0.0  # when DATA last left (coarse clock)

    # asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peername = transport.get_extra_info("peername")
        edge = self.edge
        self.deadline = self.sent_at = edge.clock + edge.limits.header_timeout
        self.reset_at = edge.now()
        # The hard limit on a header list: past it the connection must close (HPACK
        # state cannot be kept); between max_header_bytes and it, a 431 on the stream.
        header_list = 2 * edge.limits.max_header_bytes
        conn = self.h2
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: header_list,
            },
        )
        conn.decoder.max_header_list_size = header_list
        conn.initiate_connection()
        conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        edge.sessions.add(self)
        self.flush()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # decrypted after the close: nobody will answer it
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.fail(int(getattr(exc, "error_code", _PROTOCOL_ERROR) or _PROTOCOL_ERROR))
            return
        try:
            self.dispatch(events)
        except h2.exceptions.ProtocolError:
            self.broken()
            return
        self.flush_soon()

    def broken(self) -> None:
        """A state the edge did not expect (a bug): this connection ends, the edge goes on."""
        log.exception("HTTP/2 connection from %s failed", self.peername)
        self.fail(_INTERNAL_ERROR)

    def dispatch(self, events: list[h2.events.Event]) -> None:
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                self.on_data(event)  # type: ignore[arg-type]
            elif kind is h2.events.RequestReceived:
                self.on_request(event)  # type: ignore[arg-type]
            elif kind is h2.events.StreamEnded:
                stream = self.streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    stream.request_ended()
            elif kind is h2.events.WindowUpdated:
                self.on_window(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.StreamReset:
                self.on_reset(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.RemoteSettingsChanged:
                self.on_window(0)
            elif kind is h2.events.ConnectionTerminated:
                self.goaway_received = True
                if not self.streams:
                    self.close()
            if self.closing:
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.edge.sessions.discard(self)
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.connection_lost()

    def pause_writing(self) -> None:
        # The client does not read: stop reading from it (nothing it sends can pile
        # answers up) and let the streams' machines wait.
        self.write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()
        for stream in self.streams.values():
            stream.check_backlog()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()
        for stream in list(self.streams.values()):
            self.pump(stream)
            stream.sent(0)  # lets its machine go on unless its own backlog is still long

    # events ---------------------------------------------------------------------------
    def on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        assert stream_id is not None and event.headers is not None
        if self.goaway_received:
            self.h2.reset_stream(stream_id, _REFUSED_STREAM)
            return
        try:
            request = translate_request(event.headers, end_stream=event.stream_ended is not None)
        except MalformedRequest:
            self.h2.reset_stream(stream_id, _PROTOCOL_ERROR)
            self.edge.stats.record_response("", 400, 0.0, 0, 0)
            return
        stream = H2Stream(self, stream_id, chunked=request.chunked,
                          head_only=request.method == b"HEAD")  # fmt: skip
        self.streams[stream_id] = stream
        self.deadline = 0.0
        stream.start(request.head)

    def on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        assert stream_id is not None and event.data is not None
        length = event.flow_controlled_length or 0
        stream = self.streams.get(stream_id)
        if stream is None:
            self.acknowledge(length, stream_id)  # a stream already answered: discard
        else:
            stream.data(event.data, length)

    def on_window(self, stream_id: int | None) -> None:
        if stream_id:
            stream = self.streams.get(stream_id)
            if stream is not None:
                self.pump(stream)
            return
        for stream in list(self.streams.values()):
            self.pump(stream)

    def on_reset(self, stream_id: int | None) -> None:
        stream = self.streams.pop(stream_id or 0, None)
        if stream is None:
            return
        stream.client_reset()
        now = self.edge.now()
        self.reset_budget = min(RESET_BURST, self.reset_budget + (now - self.reset_at) * RESET_RATE)
        self.reset_at = now
        self.reset_budget -= 1
        if self.reset_budget < 0:
            self.fail(_CALM)
            return
        self.stream_done()

    # used by streams ------------------------------------------------------------------
    def extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self.peername
        if self.transport is None:
            return default
        return self.transport.get_extra_info(name, default)

    def acknowledge(self, size: int, stream_id: int) -> None:
        """Give ``size`` bytes of window back to the client (they left for the machine)."""
        if size > 0 and not self.closing:
            self.h2.acknowledge_received_data(size, stream_id)
            self.flush_soon()

    def send_headers(self, stream: H2Stream, headers: list[tuple[bytes, bytes]], end: bool) -> None:
        if stream.ended_out or self.closing:
            return
        self.h2.send_headers(stream.stream_id, headers, end_stream=end)
        if end:
            self.end_out(stream, ended=True)
        self.flush_soon()

    def pump(self, stream: H2Stream) -> None:
        """Send as much of ``stream``'s waiting body as the windows allow; end it when done."""
        if stream.ended_out or self.closing:
            return
        conn = self.h2
        stream_id = stream.stream_id
        queue = stream.outq
        done = stream.reader.done
        ended = False
        if queue and not self.write_paused:
            frame_size = conn.max_outbound_frame_size
            while queue:
                window = conn.local_flow_control_window(stream_id)
                if window <= 0:
                    break
                chunk = queue[0]
                size = min(window, frame_size)
                if len(chunk) > size:
                    piece = chunk[:size]
                    queue[0] = chunk[size:]
                else:
                    piece = queue.popleft()
                ended = done and not queue
                conn.send_data(stream_id, piece, end_stream=ended)
                stream.sent(len(piece))
            self.sent_at = self.edge.clock
        if done and not queue:
            if not ended:
                conn.end_stream(stream_id)
            self.end_out(stream, ended=True)
        else:
            stream.check_backlog()
        self.flush_soon()

    def reset_stream(self, stream: H2Stream, code: int) -> None:
        if stream.ended_out or self.closing:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):  # closed on h2's side already
            self.h2.reset_stream(stream.stream_id, code)
        self.end_out(stream, ended=False)
        self.flush_soon()

    def end_out(self, stream: H2Stream, *, ended: bool) -> None:
        """Nothing more is sent on ``stream``. Ended while the client still sends
        its body: RST_STREAM(NO_ERROR) tells it to stop (RFC 9113 8.1)."""
        stream.ended_out = True
        if ended and not stream.request_done:
            # h2 may know the request ended before its StreamEnded event reached us.
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.h2.reset_stream(stream.stream_id, _NO_ERROR)
        if self.streams.pop(stream.stream_id, None) is not None:
            self.stream_done()

    def stream_done(self) -> None:
        if self.streams:
            return
        if self.goaway_received:
            self.close()
        else:
            self.deadline = self.edge.clock + self.edge.limits.idle_timeout

    # the connection ---------------------------------------------------------------------
    def flush_soon(self) -> None:
        """Send h2's output once this loop turn's callbacks have run (one TLS write)."""
        if not self.flush_scheduled and not self.closing:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def fail(self, code: int) -> None:
        """A connection error: GOAWAY with ``code`` and close."""
        if self.closing:
            return
        # h2 may have ended the connection itself (a protocol error): its GOAWAY is queued.
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.close_connection(error_code=code)
        self.flush()
        self.closing = True
        if self.transport is not None:
            self.transport.close()
        # The requests in flight are given up now, not when TLS has finished closing:
        # their machines' connections and concurrency slots are freed at once.
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.connection_lost()

    def close(self) -> None:
        """GOAWAY(NO_ERROR) and close (shutdown, idle, the client went away); idempotent."""
        self.fail(_NO_ERROR)

    def check_deadline(self, now: float) -> None:
        """Called by the edge's sweep: no preface/request in time, idle too long, or
        answers that only wait for a client that gives no window for ``idle_timeout``."""
        if self.streams:
            limit = self.sent_at + self.edge.limits.idle_timeout
            if now > limit and all(s.closed for s in self.streams.values()):
                self.close()
            return
        if self.deadline and now > self.deadline:
            self.close()
