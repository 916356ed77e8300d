"""One client connection to the edge: an ``asyncio.Protocol`` parsing requests with httptools.

Keeps the connection alive between requests, runs one exchange at a time
(pipelined requests wait, their bodies buffered, reading paused), applies the
header limits and timeouts, and carries back-pressure both ways: reading from
the client pauses while the machine's socket is full, reading from the
machine pauses while the client's socket is full. After a 101 answer the
connection becomes a raw byte tunnel.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import httptools

from ferry.proxy.exchange import Exchange
from ferry.proxy.headers import build_request_head, https_redirect, simple_response
from ferry.proxy.outbox import Outbox

if TYPE_CHECKING:
    from ferry.proxy.http import HttpEdge
    from ferry.tls.bundle import EdgeTls

__all__ = ["ClientConnection"]

_UNKNOWN_HOST = "no app is served at this address"
_MAX_QUEUED = 32  # pipelined requests held per connection
_ACME_PREFIX = b"/.well-known/acme-challenge/"


def _custom_host_app(tls: EdgeTls, host: bytes) -> str | None:
    """The app a custom host name (``Host``, maybe with a port) belongs to, if any."""
    name = host.decode("latin-1").strip().lower()
    if name.startswith("["):
        return None
    return tls.app_for(name.rsplit(":", 1)[0].rstrip("."))


class _Reject(Exception):
    """Raised inside a parser callback to stop parsing; carries the answer."""

    def __init__(self, status: int, message: str, location: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.location = location  # a redirect's target


class ClientConnection(asyncio.Protocol):
    """A client's TCP connection; owned by the event loop, registered with its ``HttpEdge``."""

    PAUSE_UPSTREAM = 1  # the machine's socket buffer is full
    PAUSE_PIPELINE = 2  # a pipelined request waits for the current one
    PAUSE_BUFFER = 4  # the body waiting for a machine filled its buffer

    # fmt: off
    __slots__ = (
        "can_upgrade", "client_ip", "closing", "current", "deadline", "edge", "feed", "fixed_app",
        "get_method", "get_version", "header_bytes", "header_size", "headers", "in_headers",
        "limits", "outbox", "parser", "queued", "read_pauses", "receiving", "seen_bytes",
        "tls", "transport", "tunnel", "upgrading", "url", "wants_keep_alive", "write_paused",
    )
    # fmt: on
    outbox: Outbox  # made in connection_made, around the transport's write

    def __init__(self, edge: HttpEdge, tls: bool = False) -> None:
        """``tls``: the connection came through the edge's TLS listener (the request is
        forwarded with ``X-Forwarded-Proto: https``; ``force_https`` does not apply)."""
        self.edge = edge
        self.tls = tls
        self.limits = edge.limits
        self.parser = httptools.HttpRequestParser(self)
        # Bound once: no method lookup per request on the hot path.
        self.feed: Callable[[bytes], None] = self.parser.feed_data
        self.can_upgrade: Callable[[], bool] = self.parser.should_upgrade
        self.get_method: Callable[[], bytes] = self.parser.get_method
        self.get_version: Callable[[], str] = self.parser.get_http_version
        self.wants_keep_alive: Callable[[], bool] = self.parser.should_keep_alive
        self.transport: asyncio.Transport | None = None
        self.client_ip = b""
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.header_size = 0
        self.in_headers = False
        self.seen_bytes = False
        self.current: Exchange | None = None
        self.receiving: Exchange | None = None  # the exchange whose request is being read
        self.queued: deque[Exchange] = deque()
        self.upgrading = False
        self.tunnel: Exchange | None = None
        self.write_paused = False
        self.read_pauses = 0
        self.closing = False
        self.deadline = 0.0
        # Set for a Flycast connection: the app its address names (Host is not looked at).
        self.fixed_app: str | None = None

    # asyncio.Protocol -----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.outbox = Outbox(self.edge.turn, transport.write)  # type: ignore[attr-defined]
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]).encode() if peer else b"unknown"
        self.deadline = self.edge.clock + self.edge.limits.header_timeout
        self.edge.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.client_raw(data)
            return
        if self.upgrading:
            if self.receiving is not None:
                self.receiving.client_raw(data)
            return
        self.seen_bytes = True
        if self.in_headers or self.receiving is None:
            self.header_bytes += len(data)
        try:
            self.feed(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.upgrading = True
            rest = data[upgrade.args[0] :]
            if rest and self.receiving is not None:
                self.receiving.client_raw(rest)
            return
        except httptools.HttpParserCallbackError as exc:
            reject = exc.__context__
            if isinstance(reject, _Reject):
                self.reject(reject.status, reject.message, reject.location)
            else:
                self.reject(400, "the request could not be read")
            return
        except httptools.HttpParserError:
            self.reject(400, "malformed HTTP request")
            return
        if self.in_headers and self.header_bytes > self.limits.max_header_bytes:
            self.reject(431, "request headers are too large")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.outbox.drop()
        self.edge.connections.discard(self)
        for exchange in (self.current, self.receiving, *self.queued, self.tunnel):
            if exchange is not None:
                exchange.client_lost()
        self.current = self.receiving = self.tunnel = None
        self.queued.clear()

    def pause_writing(self) -> None:
        self.write_paused = True
        exchange = self.tunnel or self.current
        if exchange is not None and exchange.up is not None:
            exchange.up.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        exchange = self.tunnel or self.current
        if exchange is not None and exchange.up is not None:
            exchange.up.resume_reading()

    # httptools callbacks ----------------------------------------------------------
    # No on_message_begin: one callback less per request. The request line's URL
    # is the first thing httptools reports of every request.
    def on_url(self, url: bytes) -> None:
        if not self.in_headers:
            self.in_headers = True  # url, headers and header_size were reset after the last head
            if self.current is None:
                self.deadline = self.edge.clock + self.limits.header_timeout
        self.url += url
        if len(self.url) > self.limits.max_request_line:
            raise _Reject(431, "the request line is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.header_size += len(name) + len(value) + 4
        if self.header_size > self.limits.max_header_bytes or len(self.headers) > 500:
            raise _Reject(431, "request headers are too large")

    def on_headers_complete(self) -> None:
        self.in_headers = False
        self.header_bytes = 0
        edge = self.edge
        headers = self.headers  # read before the next request's headers come
        url, self.url = self.url, b""
        self.header_size = 0
        request_id = edge.request_ids.next()
        method = self.get_method()
        waf = edge.waf  # None unless some app is inspected: the one check WAF-off pays
        seen = tuple(headers) if waf is not None else ()  # as sent, for the WAF
        try:
            request = build_request_head(
                method,
                url,
                headers,
                edge.tls_headers if self.tls else edge.headers,
                self.client_ip,
                request_id,
                upgrade=self.can_upgrade,
                trusted=edge.trusted,
            )
        except ValueError:
            raise _Reject(400, "the Content-Length header is not a number") from None
        finally:
            headers.clear()
        if edge.tls is not None and url.startswith(_ACME_PREFIX) and self.current is None:
            # ACME HTTP-01, for any Host: the key authorization, then close. Unknown
            # tokens go on to the app (as do pipelined ones: validators never pipeline).
            answer = edge.tls().http01.get(url[len(_ACME_PREFIX) :].decode("latin-1"))
            if answer is not None:
                raise _Reject(200, answer)
        # A Flycast connection's app, or the app a backhaul peer routed to (trusted only).
        fixed = self.fixed_app if self.fixed_app is not None else request.hop_app
        if fixed is not None:
            app: str | None = fixed
        else:
            app = edge.hosts.app_for(request.host) if request.host else None
        routes = edge.routes_for(app) if app is not None else None
        if routes is None and fixed is None and edge.tls is not None and request.host:
            app = _custom_host_app(edge.tls(), request.host)  # a name added with `certs add`
            routes = edge.routes_for(app) if app is not None else None
        if routes is None:
            raise _Reject(404, _UNKNOWN_HOST)
        # Flycast is plain HTTP (as on Fly): no redirect to HTTPS there.
        if not self.tls and fixed is None and edge.https_port and edge.forces_https(routes.app):
            status, location = https_redirect(method, request.host, url, edge.https_port)
            raise _Reject(status, "this app is served over HTTPS", location)
        if request.content_length is not None and not edge.limits.body_allowed(
            request.content_length
        ):
            raise _Reject(
                413, f"the request body is larger than {edge.limits.max_body_bytes} bytes"
            )
        exchange = Exchange(
            edge,
            self,
            routes.app,
            method,
            request,
            request_id,
            http11=self.get_version() == "1.1",
            keep_alive=self.wants_keep_alive() and not request.upgrade,
            started_at=edge.now(),
            routes=routes,
        )
        if waf is not None:
            waf.attach(exchange, url, seen, self.get_version())
        self.receiving = exchange
        if self.current is None:
            self.current = exchange
            self.deadline = 0.0
            exchange.start()
        else:
            self.queued.append(exchange)
            self.pause_for(self.PAUSE_PIPELINE)
            if len(self.queued) > _MAX_QUEUED:
                raise _Reject(400, "too many pipelined requests")

    def on_body(self, body: bytes) -> None:
        if self.receiving is not None:
            self.receiving.client_body(body)

    def on_message_complete(self) -> None:
        receiving, self.receiving = self.receiving, None
        if receiving is not None:
            receiving.client_done()

    # used by exchanges ----------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send ``data`` at the end of this loop turn (see ``outbox``)."""
        if self.transport is not None and not self.closing:
            self.outbox.put(data)

    def pause_for(self, reason: int) -> None:
        if not self.read_pauses and self.transport is not None and not self.closing:
            self.transport.pause_reading()
        self.read_pauses |= reason

    def resume_for(self, reason: int) -> None:
        if not self.read_pauses & reason:
            return
        self.read_pauses &= ~reason
        if not self.read_pauses and self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def start_tunnel(self, exchange: Exchange) -> None:
        """The machine accepted an Upgrade: from now on bytes pass through unchanged."""
        self.tunnel = exchange
        self.upgrading = True

    def abort(self) -> None:
        """Drop the connection at once (a response cannot be completed)."""
        self.closing = True
        if self.transport is not None:
            self.outbox.drop()
            self.transport.abort()

    def close(self) -> None:
        """Close after the buffered writes are flushed; idempotent."""
        if not self.closing:
            self.closing = True
            if self.transport is not None:
                self.outbox.send_now()
                self.transport.close()

    def exchange_finished(self, exchange: Exchange) -> None:
        """The response is complete: close, or serve the next request."""
        if self.tunnel is exchange:
            self.close()
            return
        if exchange is not self.current:
            return
        self.current = None
        if not exchange.keep_alive:
            self.close()
            return
        if self.queued:
            self.current = self.queued.popleft()
            if not self.queued:
                self.resume_for(self.PAUSE_PIPELINE)
            self.current.start()
            return
        self.deadline = (
            0.0 if self.receiving is not None else self.edge.clock + self.edge.limits.idle_timeout
        )
        self.seen_bytes = False

    def reject(self, status: int, message: str, location: bytes = b"") -> None:
        """Answer a request the edge refuses (bad, too large, unknown host), redirects
        (``location``: force_https) or answers itself (200: an ACME HTTP-01 token),
        and close."""
        request_id = self.edge.request_ids.next()
        exchange = self.current
        if exchange is not None and not exchange.done:
            exchange.fail(status, message)
        else:
            extra = ((b"Location", location),) if location else ()
            self.write(simple_response(status, message, request_id=request_id, extra=extra))
            self.edge.stats.record_response("", status, 0.0, 0, 0)
        self.close()

    def check_deadline(self, now: float) -> None:
        """Called by the edge's sweep: header, idle and response timeouts."""
        exchange = self.current
        if exchange is not None:
            if exchange.deadline and now > exchange.deadline and not exchange.done:
                exchange.response_timed_out()
            return
        if self.deadline and now > self.deadline and self.tunnel is None:
            if self.in_headers or (self.seen_bytes and self.receiving is None):
                self.reject(408, "the request headers did not arrive in time")
            else:
                self.close()
