"""Health book and checker (fake prober), and the metrics the edge exports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

from ferry.model import CheckConfig, Concurrency, DesiredState, MachineState
from ferry.net.probe import ProbeResult
from ferry.proxy.health import HealthBook, HealthChecker
from ferry.proxy.metrics import EdgeCollector, EdgeStats
from ferry.proxy.routes import Backend, RouteTable, ServicePorts


class FakeProber:
    def __init__(self) -> None:
        self.passing: dict[tuple[str, int], bool] = {}
        self.calls = 0

    async def probe(self, address: str, port: int, check: CheckConfig) -> ProbeResult:
        self.calls += 1
        return ProbeResult(self.passing.get((address, port), True), "fake")


class BrokenProber:
    async def probe(self, address: str, port: int, check: CheckConfig) -> ProbeResult:
        raise ValueError("prober bug")


async def settles(condition: Callable[[], bool], within: float) -> float:
    """Seconds until ``condition()`` holds, polled on the loop; fails after ``within``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        assert loop.time() - start < within, f"not within {within}s"
        await asyncio.sleep(0.005)
    return loop.time() - start


def checked(mid: str, address: str, interval: str = "0.02s") -> Backend:
    check = CheckConfig(type="http", path="/health", interval=interval, timeout="1s")
    service = ServicePorts(
        internal_port=8080,
        ports=(80,),
        handlers=("http",),
        concurrency=Concurrency(),
        checks=(check,),
    )
    return Backend(
        mid, mid, "web", "ams", address, MachineState.STARTED, DesiredState.STARTED, (service,)
    )


def test_failing_check_takes_a_machine_out_and_passing_brings_it_back() -> None:
    async def scenario() -> None:
        book, prober = HealthBook(), FakeProber()
        checker = HealthChecker(book, prober)
        prober.passing[("10.0.0.2", 8080)] = False
        checker.sync(RouteTable(1, {"web": (checked("m1", "10.0.0.1"), checked("m2", "10.0.0.2"))}))
        await settles(lambda: book.health == {"m2": False}, within=2)
        prober.passing[("10.0.0.2", 8080)] = True
        await settles(lambda: book.health == {}, within=2)
        checker.sync(RouteTable(2, {}))  # machines gone: checks stop
        calls = prober.calls
        await checker.close()
        assert prober.calls == calls

    asyncio.run(scenario())


def test_a_machine_failing_its_first_check_is_back_long_before_the_interval() -> None:
    """A new machine probed before it bound its port must not sit out a whole interval."""

    async def scenario() -> float:
        book, prober = HealthBook(), FakeProber()
        prober.passing[("10.0.0.3", 8080)] = False  # not listening yet
        checker = HealthChecker(book, prober)
        checker.sync(RouteTable(1, {"web": (checked("m3", "10.0.0.3", interval="10s"),)}))
        await settles(lambda: book.health == {"m3": False}, within=2)
        prober.passing[("10.0.0.3", 8080)] = True  # now it listens
        back_after = await settles(lambda: book.health == {}, within=5)
        await checker.close()
        return back_after

    assert asyncio.run(scenario()) < 1.0  # back within a second, though the interval is 10 s


def test_a_prober_that_raises_fails_the_check_and_keeps_checking() -> None:
    async def scenario() -> None:
        book = HealthBook()
        checker = HealthChecker(book, BrokenProber())
        checker.sync(RouteTable(1, {"web": (checked("m4", "10.0.0.4"),)}))
        await settles(lambda: book.health == {"m4": False}, within=2)
        ((_, task),) = checker._tasks.values()
        assert not task.done()
        await checker.close()

    asyncio.run(scenario())


def test_refused_connect_is_a_short_cooldown() -> None:
    async def scenario() -> tuple[dict[str, bool], float]:
        book = HealthBook(cooldown=0.05)
        book.mark_refused("m1")
        first = dict(book.health)
        return first, await settles(lambda: book.health == {}, within=2)

    first, out_for = asyncio.run(scenario())
    assert first == {"m1": False}
    assert 0.04 <= out_for < 1.0


def test_metrics_use_fly_names_and_summary_has_quantiles() -> None:
    stats = EdgeStats("ams")
    for i in range(100):
        stats.record_response("web", 200 if i < 98 else 503, 0.001 if i < 90 else 0.2, 10, 100)
    stats.record_tcp_connect("db")
    registry = CollectorRegistry()
    registry.register(EdgeCollector(stats, lambda: {"web": {"m1": 3}}))
    text = generate_latest(registry).decode()
    assert 'fly_edge_http_responses_count{app="web",region="ams",status="200"} 98.0' in text
    assert 'fly_edge_data_out{app="web",region="ams"} 10000.0' in text
    assert 'fly_app_concurrency{app="web",machine="m1",region="ams"} 3.0' in text
    assert 'fly_edge_tcp_connects_count{app="db",region="ams"} 1.0' in text
    assert "fly_edge_http_response_time_seconds_bucket" in text
    summary = stats.summary()["web"]
    assert summary.requests == {"2xx": 98, "5xx": 2}
    assert summary.p50_seconds == 0.001 and summary.p99_seconds == 0.2


def test_checked_health_leaves_out_passive_marks() -> None:
    async def scenario() -> tuple[dict[str, bool], dict[str, bool]]:
        book = HealthBook(cooldown=10.0)
        book.set_check("m1", "http", passing=False)
        book.mark_refused("m2")
        result = dict(book.health), dict(book.checked)
        book.close()
        return result

    health, checked = asyncio.run(scenario())
    assert health == {"m1": False, "m2": False}
    assert checked == {"m1": False}
