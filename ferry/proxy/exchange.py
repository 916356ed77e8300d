"""One request through the edge: route, forward, stream back, retry or replay.

An ``Exchange`` lives from the client's request headers to the end of the
response. The fast path (an idle pooled connection to the chosen machine) is
plain callbacks; connecting, queueing for a slot and waking machines run in
a task. Bodies stream both ways; request bodies up to the replay buffer are
also kept so the request can be retried (connect refused, stale pooled
connection) or replayed (``Fly-Replay``).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ferry.errors import ValidationError
from ferry.proxy.headers import RequestHead, build_response_head, simple_response
from ferry.proxy.replay import MAX_REPLAYS, ReplayDirective, parse_replay, replay_src
from ferry.proxy.routing import NO_PREFS, AppRoutes, NoRoute, RoutePrefs, Target
from ferry.proxy.upstream import UpstreamConnection

if TYPE_CHECKING:
    from ferry.proxy.connection import ClientConnection
    from ferry.proxy.http import HttpEdge

__all__ = ["Exchange"]

_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
_TERMINATOR = b"0\r\n\r\n"


class Exchange:
    """A client request and its response. Owned by its ``ClientConnection``."""

    # fmt: off
    __slots__ = (
        "app", "attempts", "bytes_in", "bytes_out", "chunked_out", "client", "close_delimited",
        "deadline", "done", "edge", "hop", "http11", "interim", "keep_alive", "method", "pending",
        "pending_bytes", "prefs", "replay_header", "replayable", "replaying", "replays",
        "req_done", "request", "request_id", "responding", "retained", "retained_bytes", "routes",
        "sent_body", "started_at", "status", "target", "task", "tunnel_raw", "up",
        "upstream_until_close",
    )
    # fmt: on

    def __init__(
        self,
        edge: HttpEdge,
        client: ClientConnection,
        app: str,
        method: bytes,
        request: RequestHead,
        request_id: bytes,
        *,
        http11: bool,
        keep_alive: bool,
        started_at: float,
        routes: AppRoutes | None = None,
    ) -> None:
        self.edge = edge
        self.client = client
        self.app = app
        self.method = method
        self.request = request
        self.request_id = request_id
        self.http11 = http11
        self.keep_alive = keep_alive
        self.started_at = started_at
        self.routes = routes  # the plan found with the request headers; used once
        if request.prefer_region is None and request.force_instance is None:
            self.prefs = NO_PREFS
        else:
            self.prefs = RoutePrefs(request.prefer_region, request.force_instance)
        self.target: Target | None = None
        self.up: UpstreamConnection | None = None
        self.task: asyncio.Task[None] | None = None
        # Lists only once a body comes: most requests have none.
        self.pending: list[bytes] | None = None  # body not yet sent upstream
        self.pending_bytes = 0
        self.retained: list[bytes] | None = None  # the whole body so far, while replayable
        self.retained_bytes = 0
        self.replayable = True  # the body so far fits the replay buffer
        self.sent_body = False
        self.req_done = False
        self.attempts = 0
        self.replays = 0
        self.replay_header = b""
        self.hop: bytes | None = None
        self.replaying: ReplayDirective | ValidationError | None = None
        self.interim = False
        self.responding = False  # the client got the response head
        self.chunked_out = False
        self.close_delimited = False
        self.upstream_until_close = False
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.deadline = 0.0
        self.done = False
        self.tunnel_raw: list[bytes] | None = None

    # routing ------------------------------------------------------------------
    def start(self) -> None:
        """Route and forward; called when this exchange is the connection's current one."""
        if self.request.expect_continue and not self.req_done:
            self.client.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._dispatch()

    def _dispatch(self) -> None:
        if self.done:
            return
        routes, self.routes = self.routes, None
        decision = self.edge.choose(self.app, self.prefs, routes)
        if type(decision) is Target:
            edge = self.edge
            if edge.load.load.get(decision.backend.machine_id, 0) >= decision.soft_limit:
                edge.prewarm(self.app, None)  # Fly's autostart: every machine is busy
            elif decision.backend.region != edge.region:
                edge.prewarm(self.app, decision.backend.region)
            self._use(decision)
            return
        assert isinstance(decision, NoRoute)
        kind = decision.kind
        if kind in ("overflow", "no_started"):
            self.edge.stats.record_unserved(self.app)
        if kind == "overflow":
            self.edge.prewarm(self.app, None)  # more capacity for the requests that queue
            self.task = asyncio.get_running_loop().create_task(self._wait_for_slot())
        elif kind == "no_started" and self.edge.wake is not None:
            self.task = asyncio.get_running_loop().create_task(self._wake())
        elif kind == "no_started":
            self.fail(503, f"{self.app} has no started machine")
        elif self.replays:
            self.fail(502, f"could not replay: {decision.reason}", replay_failed=b"no_candidate")
        else:
            self.fail(503, decision.reason)

    async def _wait_for_slot(self) -> None:
        deadline = time.monotonic() + self.edge.limits.queue_wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not await self.edge.load.wait_for_slot(self.app, left):
                self.fail(
                    503, f"all machines of {self.app} are at their hard limit; try again shortly"
                )
                return
            decision = self.edge.choose(self.app, self.prefs)
            if isinstance(decision, Target):
                self.task = None
                self._use(decision)
                return
            if decision.kind != "overflow":
                self.task = None
                self._dispatch()
                return

    async def _wake(self) -> None:
        wake = self.edge.wake
        assert wake is not None
        woke = await wake(self.app, self.edge.region)
        self.task = None
        decision = self.edge.choose(self.app, self.prefs)
        if woke and isinstance(decision, Target):
            self._use(decision)
        else:
            self.fail(503, f"{self.app} has no started machine")

    def _use(self, target: Target) -> None:
        self.target = target
        edge = self.edge
        edge.load.acquire(self.app, target.backend.machine_id)
        region = target.backend.region
        peer = edge.backhaul.get(region) if region != edge.region else None
        if peer is not None:
            # Across the WAN through that region's edge, over a kept-alive connection:
            # one round trip per request even to apps that close every connection.
            self.hop = target.backend.machine_id.encode()
            key = peer
        else:
            self.hop = None
            key = target.upstream
        conn = edge.pool.take(key)
        if conn is not None:
            self._attach(conn)
        else:
            self.task = asyncio.get_running_loop().create_task(self._connect(target, key))

    async def _connect(self, target: Target, key: tuple[str, int]) -> None:
        began = time.monotonic()
        try:
            conn = await self.edge.pool.connect(key)
        except (OSError, TimeoutError):
            self.task = None
            self.edge.health.mark_refused(target.backend.machine_id)
            self._release_slot()
            self._retry_or_fail(502, f"could not connect to a machine of {self.app}")
            return
        self.task = None
        self.edge.stats.record_connect(self.app, time.monotonic() - began)
        if self.done:
            self.edge.pool.give(conn, self.edge.clock)
            return
        self._attach(conn)

    def _release_slot(self) -> None:
        if self.target is not None:
            self.edge.load.release(self.app, self.target.backend.machine_id)
            self.target = None

    def _can_resend(self) -> bool:
        return self.replayable or not self.sent_body

    def _retry_or_fail(self, status: int, message: str) -> None:
        self.attempts += 1
        if self.attempts < self.edge.limits.connect_attempts and self._can_resend():
            self._dispatch()
        else:
            self.fail(status, message)

    # request side -------------------------------------------------------------
    def _attach(self, conn: UpstreamConnection) -> None:
        self.up = conn
        conn.listener = self
        client = self.client
        if client.write_paused:
            conn.pause_reading()
        request = self.request
        head = request.head
        if self.replay_header:
            head = head[:-2] + b"fly-replay-src: " + self.replay_header + b"\r\n\r\n"
        if self.hop is not None:
            head = head[:-2] + b"Fly-Force-Instance-Id: " + self.hop + b"\r\n\r\n"
        body = self.retained if self.replayable else self.pending
        if body:
            self.sent_body = True
            head += b"".join(self._encode(c) for c in body)
        if self.req_done and request.chunked:
            head += _TERMINATOR
        if self.tunnel_raw:
            head += b"".join(self.tunnel_raw)
            self.tunnel_raw = None
        conn.write(head)
        if self.pending:
            self.pending = None
            self.pending_bytes = 0
            client.resume_for(client.PAUSE_BUFFER)
        self.deadline = self.edge.clock + self.edge.limits.response_timeout

    def _encode(self, chunk: bytes) -> bytes:
        if self.request.chunked:
            return b"%x\r\n%b\r\n" % (len(chunk), chunk)
        return chunk

    def client_body(self, chunk: bytes) -> None:
        if self.done:
            return
        size = len(chunk)
        self.bytes_in += size
        limit = self.edge.limits.max_body_bytes
        if limit is not None and self.bytes_in > limit:
            self.fail(413, f"the request body is larger than {limit} bytes")
            return
        if self.replayable:
            if self.retained_bytes + size <= self.edge.limits.replay_buffer_bytes:
                if self.retained is None:
                    self.retained = [chunk]
                else:
                    self.retained.append(chunk)
                self.retained_bytes += size
            else:
                self.replayable = False
                self.retained = None
        up = self.up
        if up is not None and self.replaying is None:
            self.sent_body = True
            up.write(self._encode(chunk))
        elif not self.done:
            if self.pending is None:
                self.pending = [chunk]
            else:
                self.pending.append(chunk)
            self.pending_bytes += size
            if self.pending_bytes > self.edge.limits.replay_buffer_bytes:
                self.client.pause_for(self.client.PAUSE_BUFFER)

    def client_done(self) -> None:
        self.req_done = True
        up = self.up
        if up is not None and self.request.chunked and self.replaying is None:
            up.write(_TERMINATOR)

    def client_raw(self, data: bytes) -> None:
        """Bytes after an Upgrade request, before or after the machine answered 101."""
        up = self.up
        if up is not None and up.tunnel:
            up.write(data)
        elif self.tunnel_raw is None:
            self.tunnel_raw = [data]
        else:
            self.tunnel_raw.append(data)

    def client_lost(self) -> None:
        """The client went away: give up the upstream side without reusing it."""
        if self.done:
            return
        self.done = True
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if self.up is not None:
            self.up.detach_and_close()
            self.up = None
        self._release_slot()

    # response side ------------------------------------------------------------
    # The upstream connection corks the client around every read, so these
    # append to ``client.out`` and the answer leaves in one send at the end.
    def upstream_head(
        self,
        conn: UpstreamConnection,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        if status < 200 and status != 101:
            self.interim = True
            return
        self.deadline = 0.0
        has_body = status >= 200 and status not in (204, 304) and self.method != b"HEAD"
        head = build_response_head(
            status,
            reason,
            headers,
            self.edge.headers,
            self.request_id,
            has_body=has_body,
            client_http11=self.http11,
            client_keep_alive=self.keep_alive and status != 101,
            trusted=self.edge.trusted,
        )
        if head.replay is not None and status != 101:
            try:
                self.replaying = parse_replay(head.replay)
            except ValidationError as exc:
                self.replaying = exc
            return
        self.status = status
        self.responding = True
        if status == 101:
            self.keep_alive = False
        self.chunked_out = head.chunked_out
        self.close_delimited = head.close_delimited
        self.upstream_until_close = head.upstream_until_close
        if head.close_delimited:
            self.keep_alive = False
        self.client.out.append(head.head)
        if self.method == b"HEAD" and status != 101:
            self.up = None
            conn.detach_and_close()  # httptools cannot tell a HEAD response has no body
            self._finish()

    def upstream_body(self, body: bytes) -> None:
        if self.replaying is not None:
            return
        self.bytes_out += len(body)
        if self.chunked_out:
            self.client.out.append(b"%x\r\n%b\r\n" % (len(body), body))
        else:
            self.client.out.append(body)

    def upstream_complete(self, conn: UpstreamConnection) -> None:
        if self.interim:
            self.interim = False
            return
        if self.status == 101:
            return  # the tunnel starts in upstream_upgraded
        self.up = None
        edge = self.edge
        if self.req_done and conn.reusable():
            edge.pool.give(conn, edge.clock)
        else:
            conn.detach_and_close()
        if self.replaying is not None:
            self._replay()
            return
        if self.chunked_out:
            self.client.out.append(_TERMINATOR)
        self._finish()

    def _replay(self) -> None:
        directive, self.replaying = self.replaying, None
        source = self.target
        self._release_slot()
        if isinstance(directive, ValidationError):
            self.fail(502, f"the app asked for a replay the edge cannot do: {directive.message}",
                      replay_failed=b"invalid")  # fmt: skip
            return
        assert directive is not None and source is not None
        self.replays += 1
        if self.replays > MAX_REPLAYS:
            self.fail(
                502, f"more than {MAX_REPLAYS} chained replays", replay_failed=b"retries_exhausted"
            )
            return
        if not self._can_resend() or not self.req_done:
            self.fail(502, "the request body is too large to replay (over 1 MB)",
                      replay_failed=b"body_too_large")  # fmt: skip
            return
        backend = source.backend
        t_us = time.time_ns() // 1000
        self.replay_header = replay_src(backend.machine_id, backend.region, t_us, directive.state)
        self.prefs = directive.prefs(backend.machine_id)
        self.attempts = 0
        self._dispatch()

    def upstream_upgraded(self, conn: UpstreamConnection, rest: bytes) -> None:
        if self.status != 101:
            conn.close()
            return
        conn.tunnel = True
        self.client.start_tunnel(self)
        if rest:
            self.client.write(rest)
        if self.tunnel_raw:
            conn.write(b"".join(self.tunnel_raw))
            self.tunnel_raw = None

    def upstream_tunnel_data(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self.client.write(data)

    def upstream_lost(self, conn: UpstreamConnection) -> None:
        self.up = None
        if self.done:
            return
        if conn.tunnel or self.status == 101:
            self._finish()
            return
        if self.replaying is not None:
            self._replay()  # a close-delimited Fly-Replay answer ends with its connection
            return
        if self.responding:
            if self.close_delimited or self.upstream_until_close:
                if self.chunked_out:
                    self.client.write(_TERMINATOR)
                self._finish()
            else:
                self._release_slot()
                self.done = True
                self.client.abort()  # the client sees a truncated response, as it must
            return
        retriable = conn.reused or self.method in _IDEMPOTENT
        self.edge.pool.purge(conn.key)  # its siblings are likely dead too (machine restarted)
        self._release_slot()
        if self.replaying is None and retriable:
            self._retry_or_fail(502, f"a machine of {self.app} closed the connection early")
        else:
            self.fail(502, f"a machine of {self.app} closed the connection before answering")

    def upstream_write_paused(self, paused: bool) -> None:
        if paused:
            self.client.pause_for(self.client.PAUSE_UPSTREAM)
        else:
            self.client.resume_for(self.client.PAUSE_UPSTREAM)

    def response_timed_out(self) -> None:
        """No response head within the response timeout."""
        if self.up is not None:
            self.up.detach_and_close()
            self.up = None
        self._release_slot()
        self.fail(504, f"a machine of {self.app} did not answer in time")

    # ending -------------------------------------------------------------------
    def fail(self, status: int, message: str, *, replay_failed: bytes | None = None) -> None:
        """Answer with an edge error page (if nothing was sent yet) and end the exchange."""
        if self.done:
            return
        if self.up is not None:
            self.up.detach_and_close()
            self.up = None
        self._release_slot()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        self.task = None
        if self.responding:
            self.done = True
            self.client.abort()
            return
        extra = ((b"fly-replay-failed", b"reason=" + replay_failed),) if replay_failed else ()
        close = not (self.req_done and self.keep_alive)
        self.keep_alive = not close
        self.client.write(
            simple_response(status, message, request_id=self.request_id, extra=extra, close=close)
        )
        self.status = status
        self._finish()

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        if not self.req_done:
            self.keep_alive = False  # the rest of the request cannot be skipped safely
        edge = self.edge
        target = self.target
        if target is not None:
            self.target = None
            edge.load.release(self.app, target.backend.machine_id)
        edge.stats.record_response(
            self.app, self.status, edge.now() - self.started_at, self.bytes_in, self.bytes_out
        )
        self.client.exchange_finished(self)
