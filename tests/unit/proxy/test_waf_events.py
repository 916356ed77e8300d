"""WAF events on their way to the control plane: bounded, kept while it is down."""

from __future__ import annotations

import asyncio

from ferry.errors import UnavailableError, ValidationError
from ferry.model.machine_waf import WafEvent
from ferry.proxy.waf_events import WafEventBuffer, event_of, ship_waf_events


def make(n: int) -> WafEvent:
    return event_of(
        app="web", region="ams", request_id=f"r{n}", time=1_800_000_000.0 + n,
        client_ip="192.0.2.7", method="GET", path="/?x", action="detected", status=0,
        anomaly_score=5, rule_ids=[942100, 949110],
    )  # fmt: skip


def test_the_buffer_drops_the_oldest_past_its_bound_and_counts_them() -> None:
    buffer = WafEventBuffer(bound=3)
    for n in range(5):
        buffer.add(make(n))
    assert [e.request_id for e in buffer.events] == ["r2", "r3", "r4"]
    assert buffer.dropped == 2


def test_events_survive_a_control_plane_outage_in_order() -> None:
    async def scenario() -> list[str]:
        buffer = WafEventBuffer()
        delivered: list[str] = []
        down = True

        async def send(batch: list[WafEvent]) -> None:
            if down:
                raise UnavailableError("the control plane is down")
            delivered.extend(e.request_id for e in batch)

        for n in range(3):
            buffer.add(make(n))
        task = asyncio.get_running_loop().create_task(ship_waf_events(send, buffer, interval=0.01))
        await asyncio.sleep(0.05)
        assert len(buffer.events) == 3 and not delivered  # kept, not lost
        buffer.add(make(3))
        down = False
        for _ in range(100):
            if len(delivered) == 4:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        return delivered

    assert asyncio.run(scenario()) == ["r0", "r1", "r2", "r3"]


def test_a_refused_batch_is_dropped_and_counted_not_retried_forever() -> None:
    async def scenario() -> WafEventBuffer:
        buffer = WafEventBuffer()
        calls = 0

        async def send(batch: list[WafEvent]) -> None:
            nonlocal calls
            calls += 1
            raise ValidationError("refused")

        buffer.add(make(1))
        task = asyncio.get_running_loop().create_task(ship_waf_events(send, buffer, interval=0.01))
        await asyncio.sleep(0.1)
        task.cancel()
        assert calls == 1
        return buffer

    buffer = asyncio.run(scenario())
    assert not buffer.events and buffer.dropped == 1
