"""The engine in worker processes (real libmodsecurity and CRS): where requests run."""

from __future__ import annotations

import asyncio

from ferry.model.machine_waf import WafConfig
from ferry.waf.engine import Inspection, WafRequest
from ferry.waf.workers import WorkerEngine

BLOCK = WafConfig(mode="block", paranoia=1)
HEADERS = ((b"Host", b"web.example"), (b"User-Agent", b"Mozilla/5.0"), (b"Accept", b"*/*"))


def request(uri: bytes, rid: str = "req-1") -> WafRequest:
    return WafRequest(rid, ("192.0.2.7", 51000), ("127.0.0.1", 80), b"GET", uri, "1.1", HEADERS)


def worker_pid(inspection: Inspection) -> int:
    return int(inspection.worker.process.pid)  # type: ignore[attr-defined]


def test_one_after_another_a_rule_sets_requests_stay_on_one_worker() -> None:
    async def scenario() -> None:
        engine = WorkerEngine(2)
        try:
            await engine.load(BLOCK)
            pids = set()
            finishing = []
            for n in range(6):
                inspection = await engine.request(BLOCK, request(b"/products?id=%d" % n))
                assert inspection.status == 0
                pids.add(worker_pid(inspection))
                # as on the edge: the response phase and logging run while the next comes
                finishing.append(
                    asyncio.ensure_future(engine.finish(inspection, (200, "HTTP/1.1", ())))
                )
                await asyncio.sleep(0)
            assert all(o.rule_ids == () for o in await asyncio.gather(*finishing))
            assert len(pids) == 1  # its caches stay warm for this rule set
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_requests_at_once_spread_over_the_workers_and_keep_their_verdicts() -> None:
    async def scenario() -> None:
        engine = WorkerEngine(2)
        try:
            await engine.load(BLOCK)
            attack, benign = await asyncio.gather(
                engine.request(BLOCK, request(b"/search?q=1%27%20OR%201%3D1--", "a")),
                engine.request(BLOCK, request(b"/search?q=blue+shoes", "b")),
            )
            assert worker_pid(attack) != worker_pid(benign)  # the home worker was busy
            assert (attack.status, benign.status) == (403, 0)
            outcome = await engine.finish(attack, None)
            assert 942100 in outcome.rule_ids and outcome.anomaly_score >= 5
            assert (await engine.finish(benign, None)).rule_ids == ()
        finally:
            await engine.close()

    asyncio.run(scenario())
