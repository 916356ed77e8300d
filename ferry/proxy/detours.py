"""An exchange's detours off the fast path: a slot to wait for, a machine to wake or
connect to, a replay, an error page.

The fast path (an idle pooled connection to the chosen machine) stays in
``exchange.py``. These run when it cannot be taken: each takes the
``Exchange`` and ends by handing it back to the fast path (``use``,
``attach``, ``dispatch``) or by failing it. The coroutines run in the
exchange's ``task``; they clear it before they hand back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ferry.errors import ValidationError
from ferry.proxy.headers import HOP_REFUSED, TERMINATOR, simple_response
from ferry.proxy.replay import MAX_REPLAYS, REROUTE, replay_src
from ferry.proxy.routes import Backend
from ferry.proxy.routing import Target, http_service

if TYPE_CHECKING:
    from ferry.proxy.exchange import Exchange
    from ferry.proxy.upstream import UpstreamConnection

__all__ = [
    "connect_then_attach", "direct_target", "fail", "replay", "resume_watchdog", "upstream_lost",
    "wait_for_slot", "wake_then_use",
]  # fmt: skip

# Safe to send again after the machine closed without answering.
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
#: How long a request forwarded to a resuming machine waits for it to show as started.
RESUME_TIMEOUT = 10.0
RESUME_POLL_SECONDS = 0.005
_WATCHDOGS: set[asyncio.Task[None]] = set()


async def wait_for_slot(ex: Exchange) -> None:
    """Every machine is at its hard limit: wait (bounded) for one to free a slot."""
    edge = ex.edge
    deadline = time.monotonic() + edge.limits.queue_wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not await edge.load.wait_for_slot(ex.app, left):
            fail(ex, 503, f"all machines of {ex.app} are at their hard limit; try again shortly")
            return
        decision = edge.choose(ex.app, ex.prefs)
        if isinstance(decision, Target):
            ex.task = None
            ex.use(decision)
            return
        if decision.kind != "overflow":
            ex.task = None
            ex.dispatch()
            return


async def wake_then_use(ex: Exchange) -> None:
    """No machine is started: start a stopped one (Fly's autostart), then route to it.

    The waker answers the machine it woke (or True: route as usual); it is used
    when routing finds nothing better, even before its first health check passes
    (the waker saw it accept a connection), or while it resumes from a suspend
    (see ``ferry.proxy.wake``): then ``resume_watchdog`` bounds the wait for it.
    Only requests safe to send again go to a machine still frozen; others wait
    (bounded) for the table to show it started.
    """
    edge = ex.edge
    wake = edge.wake
    assert wake is not None
    woke = await wake(ex.app, edge.region)
    if isinstance(woke, Backend) and not woke.started and ex.method not in _IDEMPOTENT:
        # Never leave a request that must not run twice in a frozen socket that may not
        # thaw (the watchdog's 503 could not take it back): wait for ``started``.
        woke = await _until_started(ex, woke)
    ex.task = None
    if ex.done:
        return
    decision = edge.choose(ex.app, ex.prefs)
    if isinstance(decision, Target):
        ex.use(decision)
        return
    direct = direct_target(woke, edge.rtt_ms) if isinstance(woke, Backend) else None
    if direct is None:
        fail(ex, 503, f"{ex.app} has no started machine, and none could be started in time")
        return
    ex.use(direct)
    if not direct.backend.started:
        watchdog = asyncio.get_running_loop().create_task(resume_watchdog(ex, direct.backend))
        _WATCHDOGS.add(watchdog)  # the loop keeps only a weak reference to a task
        watchdog.add_done_callback(_WATCHDOGS.discard)


def direct_target(backend: Backend, rtt_ms: Mapping[str, float]) -> Target | None:
    """``backend``'s HTTP service as a target, whatever its state and health; None if it
    has none. Pure."""
    service = http_service(backend)
    if service is None:
        return None
    conc = service.concurrency
    rtt = rtt_ms.get(backend.region, 0.0)
    return Target(backend, service.internal_port, conc.soft_limit, conc.hard_limit, rtt)


async def _until_started(ex: Exchange, machine: Backend) -> Backend | bool:
    """``machine``'s entry once the table shows it started, or False after
    ``RESUME_TIMEOUT``."""
    deadline = time.monotonic() + RESUME_TIMEOUT
    table = ex.edge.table
    while time.monotonic() < deadline:
        for b in table().backends(ex.app):
            if b.machine_id == machine.machine_id and b.started:
                return b
        await asyncio.sleep(RESUME_POLL_SECONDS)
    return False


async def resume_watchdog(ex: Exchange, machine: Backend) -> None:
    """A request forwarded to a machine still frozen: if no answer has begun and the table
    does not show the machine started within ``RESUME_TIMEOUT`` (stopped or suspended
    again before it thawed, its host down), answer 503 rather than hold the request
    until the response timeout. A machine shown started is left to that timeout."""
    deadline = time.monotonic() + RESUME_TIMEOUT
    table = ex.edge.table
    while not ex.done and not ex.responding:
        if any(b.machine_id == machine.machine_id and b.started for b in table().backends(ex.app)):
            return
        if time.monotonic() >= deadline:
            fail(ex, 503, f"machine {machine.machine_id} of {ex.app} did not resume in time")
            return
        await asyncio.sleep(RESUME_POLL_SECONDS)


async def connect_then_attach(ex: Exchange, target: Target, key: tuple[str, int]) -> None:
    """No idle pooled connection to ``key``: open one; a refusal retries elsewhere."""
    edge = ex.edge
    began = time.monotonic()
    try:
        conn = await edge.pool.connect(key)
    except (OSError, TimeoutError):
        ex.task = None
        edge.health.mark_refused(target.backend.machine_id)
        ex.release_slot()
        ex.retry_or_fail(502, f"could not connect to a machine of {ex.app}")
        return
    ex.task = None
    edge.stats.record_connect(ex.app, time.monotonic() - began)
    if ex.done:
        edge.pool.give(conn, edge.clock)
        return
    ex.attach(conn)


def replay(ex: Exchange) -> None:
    """The machine answered with ``Fly-Replay``: send the request where it says.

    ``REROUTE`` (a peer edge had no machine for it): route it again here, the
    peer's machine out for the cooldown, as after a refused connect.
    """
    directive, ex.replaying = ex.replaying, None
    source = ex.target
    ex.release_slot()
    if directive is REROUTE and source is not None:
        ex.edge.health.mark_refused(source.backend.machine_id)
        region = source.backend.region
        ex.retry_or_fail(503, f"no machine of {ex.app} in {region} could take the request")
        return
    if isinstance(directive, ValidationError):
        fail(ex, 502, f"the app asked for a replay the edge cannot do: {directive.message}",
             replay_failed=b"invalid")  # fmt: skip
        return
    assert directive is not None and source is not None
    ex.replays += 1
    if ex.replays > MAX_REPLAYS:
        fail(ex, 502, f"more than {MAX_REPLAYS} chained replays",
             replay_failed=b"retries_exhausted")  # fmt: skip
        return
    if not ex.can_resend() or not ex.req_done:
        fail(ex, 502, "the request body is too large to replay (over 1 MB)",
             replay_failed=b"body_too_large")  # fmt: skip
        return
    backend = source.backend
    t_us = time.time_ns() // 1000
    ex.replay_header = replay_src(backend.machine_id, backend.region, t_us, directive.state)
    ex.prefs = directive.prefs(backend.machine_id)
    ex.attempts = 0
    ex.dispatch()


def upstream_lost(ex: Exchange, conn: UpstreamConnection) -> None:
    """The machine's connection closed while the exchange still needed it."""
    if conn.tunnel or ex.status == 101:
        ex.finish()
        return
    if ex.replaying is not None:
        replay(ex)  # a close-delimited Fly-Replay answer ends with its connection
        return
    if ex.responding:
        if ex.close_delimited or ex.upstream_until_close:
            if ex.chunked_out:
                ex.client.write(TERMINATOR)
            ex.finish()
        else:
            ex.release_slot()
            ex.done = True
            ex.client.abort()  # the client sees a truncated response, as it must
        return
    retriable = conn.reused or ex.method in _IDEMPOTENT
    ex.edge.pool.purge(conn.key)  # its siblings are likely dead too (machine restarted)
    ex.release_slot()
    if retriable:
        ex.retry_or_fail(502, f"a machine of {ex.app} closed the connection early")
    else:
        fail(ex, 502, f"a machine of {ex.app} closed the connection before answering")


def fail(ex: Exchange, status: int, message: str, *, replay_failed: bytes | None = None) -> None:
    """Answer with an edge error page (if nothing was sent yet) and end the exchange."""
    if ex.done:
        return
    if ex.up is not None:
        ex.up.detach_and_close()
        ex.up = None
    ex.release_slot()
    if ex.task is not None and ex.task is not asyncio.current_task():
        ex.task.cancel()
    ex.task = None
    if ex.responding:
        ex.done = True
        ex.client.abort()  # the client sees a truncated response, as it must
        return
    extra: tuple[tuple[bytes, bytes], ...] = ()
    if replay_failed:
        extra = ((b"fly-replay-failed", b"reason=" + replay_failed),)
    if ex.request.hop is not None and not ex.reached and status in (502, 503):
        extra += ((HOP_REFUSED, b"1"),)  # no machine here got it: the first edge may resend
    close = not (ex.req_done and ex.keep_alive)
    ex.keep_alive = not close
    ex.client.write(
        simple_response(status, message, request_id=ex.request_id, extra=extra, close=close)
    )
    ex.status = status
    ex.finish()
