"""The engine in worker processes (real libmodsecurity and CRS): where requests run."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from ferry.model.machine_waf import WafConfig
from ferry.waf.engine import Inspection, WafRequest
from ferry.waf.worker import DEFAULT_SPIN_US, spin_seconds
from ferry.waf.workers import WorkerEngine

BLOCK = WafConfig(mode="block", paranoia=1)
HEADERS = ((b"Host", b"web.example"), (b"User-Agent", b"Mozilla/5.0"), (b"Accept", b"*/*"))


def request(uri: bytes, rid: str = "req-1") -> WafRequest:
    return WafRequest(rid, ("192.0.2.7", 51000), ("127.0.0.1", 80), b"GET", uri, "1.1", HEADERS)


def worker_pid(inspection: Inspection) -> int:
    return int(inspection.worker.process.pid)  # type: ignore[attr-defined]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def test_a_polling_worker_answers_and_sleeps_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_WAF_SPIN_US", "5000")

    async def scenario() -> None:
        engine = WorkerEngine(1)
        try:
            for n in range(20):
                inspection = await engine.request(BLOCK, request(b"/?q=%d" % n))
                assert inspection.status == 0
                await engine.finish(inspection, None)
            blocked = await engine.request(BLOCK, request(b"/?q=%3Cscript%3Ealert(1)%3C/script%3E"))
            assert blocked.status == 403
            await engine.finish(blocked, None)
            pid = worker_pid(blocked)
            await asyncio.sleep(0.05)  # past the poll
            before, started = cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(0.5)
            idle = cpu_seconds(pid) - before
            assert idle < 0.1 * (time.monotonic() - started), f"{idle:.2f} s of CPU while idle"
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_the_poll_is_read_from_the_environment_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FERRY_WAF_SPIN_US", "250")
    assert spin_seconds() == 250e-6
    monkeypatch.setenv("FERRY_WAF_SPIN_US", "99999999")
    assert spin_seconds() == 0.1
    monkeypatch.setenv("FERRY_WAF_SPIN_US", "lots")
    assert spin_seconds() == DEFAULT_SPIN_US / 1e6
