"""WAF events on their way from the edge to the control plane.

``WafEventBuffer`` holds events in arrival order up to a bound; past it the
oldest are dropped and counted (``ferry_waf_events_dropped_count``): an
attack flood while the control plane is down costs the edge bounded memory.
``ship_waf_events`` sends them in batches (``POST
/v1/edges/{region}/waf-events``) every ``interval`` seconds and right away
when a batch is full; a batch the control plane did not take goes back to
the front of the buffer and is sent again later, so events survive an
outage up to the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from ferry.errors import FerryError, NotFoundError, ValidationError
from ferry.model.machine_waf import WafAction, WafEvent

__all__ = ["BATCH", "WafEventBuffer", "event_of", "ship_waf_events"]

log = logging.getLogger(__name__)

#: Events per POST.
BATCH = 500


def event_of(
    *,
    app: str,
    region: str,
    request_id: str,
    time: float,
    client_ip: str,
    method: str,
    path: str,
    action: WafAction,
    status: int,
    anomaly_score: int,
    rule_ids: list[int],
) -> WafEvent:
    """The event for one inspected request (``time``: seconds since the epoch)."""
    return WafEvent(
        app=app,
        region=region,
        request_id=request_id,
        time=datetime.fromtimestamp(time, UTC),
        client_ip=client_ip,
        method=method[:32],
        path=path[:2048],
        action=action,
        status=status,
        anomaly_score=anomaly_score,
        rule_ids=rule_ids[:2000],
    )


class WafEventBuffer:
    """Events waiting for the control plane; bounded, oldest dropped first. Loop only."""

    def __init__(self, bound: int = 10_000) -> None:
        self.bound = bound
        self.events: deque[WafEvent] = deque()
        self.dropped = 0
        self.ready = asyncio.Event()

    def add(self, event: WafEvent) -> None:
        self.events.append(event)
        while len(self.events) > self.bound:
            self.events.popleft()
            self.dropped += 1
        if len(self.events) >= BATCH:
            self.ready.set()

    def take(self, limit: int = BATCH) -> list[WafEvent]:
        """Up to ``limit`` of the oldest events, removed from the buffer."""
        count = min(limit, len(self.events))
        return [self.events.popleft() for _ in range(count)]

    def put_back(self, batch: list[WafEvent]) -> None:
        """A batch that was not delivered: first in line again (within the bound)."""
        self.events.extendleft(reversed(batch))
        while len(self.events) > self.bound:
            self.events.pop()  # the newest go: the older ones were promised first
            self.dropped += 1


async def ship_waf_events(
    send: Callable[[list[WafEvent]], Awaitable[None]],
    buffer: WafEventBuffer,
    *,
    interval: float = 1.0,
) -> None:
    """Ship ``buffer`` with ``send`` forever (cancel to stop). ``send`` raises
    ``FerryError`` (or ``OSError``) when the control plane does not take a batch:
    ``ValidationError``/``NotFoundError`` (refused) drop it, anything else (the
    control plane is down) keeps it for the next try."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(buffer.ready.wait(), interval)
        buffer.ready.clear()
        while buffer.events:
            batch = buffer.take()
            try:
                await send(batch)
            except (ValidationError, NotFoundError) as exc:
                # Refused, not lost in transit (an app deleted meanwhile): sending the
                # same batch again would be refused again.
                buffer.dropped += len(batch)
                log.warning("WAF events refused by the control plane, dropped: %s", exc)
            except (FerryError, OSError) as exc:
                buffer.put_back(batch)
                log.warning("WAF events not delivered (%d waiting): %s", len(buffer.events), exc)
                break
