"""One request through the edge: route, forward, stream back, retry or replay.

An ``Exchange`` lives from the client's request headers to the end of the
response. The fast path (an idle pooled connection to the chosen machine) is
plain callbacks; the detours (connecting, queueing for a slot, waking
machines, replays, error pages) are in ``detours.py``. Bodies stream both
ways; request bodies up to the replay buffer are also kept so the request
can be retried (connect refused, stale pooled connection) or replayed
(``Fly-Replay``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ferry.errors import ValidationError
from ferry.proxy import detours
from ferry.proxy.headers import HOP, HOP_APP, TERMINATOR, RequestHead, build_response_head
from ferry.proxy.replay import REROUTE, ReplayDirective, parse_replay
from ferry.proxy.routing import NO_PREFS, AppRoutes, NoRoute, RoutePrefs, Target
from ferry.proxy.upstream import UpstreamConnection

if TYPE_CHECKING:
    from ferry.proxy.connection import ClientConnection
    from ferry.proxy.http import HttpEdge
    from ferry.proxy.waf_gate import WafCheck

__all__ = ["Exchange", "request_prefs"]


def request_prefs(request: RequestHead, region: str) -> RoutePrefs:
    """What the request's routing headers ask for, at the edge of ``region``."""
    hop = request.hop
    only: frozenset[str] | None
    if hop is not None:
        # Forwarded by another edge: its pick, else another machine here, else
        # "refused" so that edge sends it elsewhere (tables differ for a moment).
        only = frozenset((region,))
    else:
        only = None if request.force_region is None else frozenset((request.force_region,))
    return RoutePrefs(
        prefer_region=request.prefer_region,
        force_instance=request.force_instance,
        only_regions=only,
        prefer_instance=hop or request.prefer_instance,
    )


class Exchange:
    """A client request and its response. Owned by its ``ClientConnection``."""

    # fmt: off
    __slots__ = (
        "app", "attempts", "bytes_in", "bytes_out", "chunked_out", "client", "close_delimited",
        "deadline", "done", "edge", "hop", "http11", "interim", "keep_alive", "method", "pending",
        "pending_bytes", "prefs", "reached", "replay_header", "replayable", "replaying",
        "replays", "req_done", "request", "request_id", "responding", "retained",
        "retained_bytes", "routes", "sent_body", "started_at", "status", "target", "task",
        "tunnel_raw", "up", "upstream_until_close", "waf",
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
        self.prefs = request_prefs(request, edge.region) if request.steered else NO_PREFS
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
        self.reached = False  # the request was sent to a machine (or a peer edge)
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
        self.waf: WafCheck | None = None  # the app's WAF inspects this request

    # routing ------------------------------------------------------------------
    def start(self) -> None:
        """Route and forward; called when this exchange is the connection's current one."""
        if self.request.expect_continue and not self.req_done:
            self.client.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self.waf is not None:
            self.waf.start()  # proceed() once the request passes inspection
            return
        self.proceed()

    def proceed(self) -> None:
        """Serve from statics or route: the request may go on to the app."""
        statics = self.edge.statics
        if statics is not None and statics.serve(self):
            return  # ``[[statics]]``: answered from the image's files, or dispatched on a miss
        self.dispatch()

    def dispatch(self) -> None:
        """Route (again): to a machine now, or into a detour (queue, wake, error)."""
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
            self.use(decision)
            return
        assert isinstance(decision, NoRoute)
        kind = decision.kind
        if kind in ("overflow", "no_started"):
            self.edge.stats.record_unserved(self.app)
        if kind == "overflow":
            self.edge.prewarm(self.app, None)  # more capacity for the requests that queue
            self.task = asyncio.get_running_loop().create_task(detours.wait_for_slot(self))
        elif kind == "no_started" and self.edge.wake is not None:
            self.task = asyncio.get_running_loop().create_task(detours.wake_then_use(self))
        elif kind == "no_started":
            self.fail(503, f"{self.app} has no started machine")
        elif self.replays:
            self.fail(502, f"could not replay: {decision.reason}", replay_failed=b"no_candidate")
        else:
            self.fail(503, decision.reason)

    def use(self, target: Target) -> None:
        """Take a slot on ``target`` and an idle pooled connection, or open one."""
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
            self.attach(conn)
        else:
            self.task = asyncio.get_running_loop().create_task(
                detours.connect_then_attach(self, target, key)
            )

    def release_slot(self) -> None:
        """Give back the concurrency slot taken on the target, if any."""
        if self.target is not None:
            self.edge.load.release(self.app, self.target.backend.machine_id)
            self.target = None

    def can_resend(self) -> bool:
        """Whether the whole request can still be sent again (retry or replay)."""
        return self.replayable or not self.sent_body

    def retry_or_fail(self, status: int, message: str) -> None:
        """Route again while the request can be resent and tries remain; else fail.

        The first ``connect_attempts`` tries follow at once (the next machine). Then,
        until ``retry_window`` has passed since the request came, each try waits a
        growing pause (25 ms doubling to 400 ms) and routes afresh: the table may
        have caught up by then (a machine that had just stopped is now listed as
        stopped, and the request wakes it).
        """
        self.attempts += 1
        if not self.can_resend():
            self.fail(status, message)
            return
        limits = self.edge.limits
        if self.attempts < limits.connect_attempts:
            self.dispatch()
            return
        edge = self.edge
        pause = min(0.025 * (1 << min(self.attempts - limits.connect_attempts, 4)), 0.4)
        if edge.now() + pause - self.started_at > limits.retry_window:
            self.fail(status, message)
            return
        asyncio.get_running_loop().call_later(pause, self.dispatch)

    # request side -------------------------------------------------------------
    def attach(self, conn: UpstreamConnection) -> None:
        """Send the request (head and the body so far) on ``conn``; it answers to us."""
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
            head = (
                head[:-2] + HOP + b": " + self.hop + b"\r\n"
                + HOP_APP + b": " + self.app.encode() + b"\r\n\r\n"
            )  # fmt: skip
        body = self.retained if self.replayable else self.pending
        if body:
            self.sent_body = True
            head += b"".join([self._encode(c) for c in body])
        if self.req_done and request.chunked:
            head += TERMINATOR
        if self.tunnel_raw:
            head += b"".join(self.tunnel_raw)
            self.tunnel_raw = None
        conn.write(head)
        self.reached = True
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
        if self.waf is not None:
            self.waf.body_arrived()

    def client_done(self) -> None:
        self.req_done = True
        if self.waf is not None:
            self.waf.body_arrived()
        up = self.up
        if up is not None and self.request.chunked and self.replaying is None:
            up.write(TERMINATOR)

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
        if self.waf is not None:
            self.waf.close()
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if self.up is not None:
            self.up.detach_and_close()
            self.up = None
        self.release_slot()

    # response side ------------------------------------------------------------
    # What these write to the client leaves at the end of the loop turn, in one
    # send with the rest of the turn's answer (``ferry.proxy.outbox``).
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
        if head.hop_refused and self.hop is not None:
            self.replaying = REROUTE
            return
        if head.replay is not None and status != 101:
            try:
                self.replaying = parse_replay(head.replay)
            except ValidationError as exc:
                self.replaying = exc
            return
        self.status = status
        self.responding = True
        if self.waf is not None:
            self.waf.response(status, headers, self.http11)
        if status == 101:
            self.keep_alive = False
        self.chunked_out = head.chunked_out
        self.close_delimited = head.close_delimited
        self.upstream_until_close = head.upstream_until_close
        if head.close_delimited:
            self.keep_alive = False
        self.client.write(head.head)
        if self.method == b"HEAD" and status != 101:
            self.up = None
            conn.detach_and_close()  # httptools cannot tell a HEAD response has no body
            self.finish()

    def upstream_body(self, body: bytes) -> None:
        if self.replaying is not None:
            return
        self.bytes_out += len(body)
        if self.chunked_out:
            self.client.write(b"%x\r\n%b\r\n" % (len(body), body))
        else:
            self.client.write(body)

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
            detours.replay(self)
            return
        if self.chunked_out:
            self.client.write(TERMINATOR)
        self.finish()

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
        if not self.done:
            detours.upstream_lost(self, conn)

    def upstream_write_paused(self, paused: bool) -> None:
        if paused:
            self.client.pause_for(self.client.PAUSE_UPSTREAM)
        else:
            self.client.resume_for(self.client.PAUSE_UPSTREAM)

    def response_timed_out(self) -> None:
        """No response head within the response timeout."""
        detours.fail(self, 504, f"a machine of {self.app} did not answer in time")

    # ending -------------------------------------------------------------------
    def fail(self, status: int, message: str, *, replay_failed: bytes | None = None) -> None:
        """Answer with an edge error page (if nothing was sent yet) and end the exchange."""
        detours.fail(self, status, message, replay_failed=replay_failed)

    def finish(self) -> None:
        """End the exchange: release its slot, count it, tell the connection."""
        if self.done:
            return
        self.done = True
        if self.waf is not None:
            self.waf.close()
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
