"""Health book and checker (fake prober), and the metrics the edge exports."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest

from ferry.model import CheckConfig, Concurrency, DesiredState, MachineState
from ferry.proxy.health import HealthBook, HealthChecker
from ferry.proxy.metrics import EdgeCollector, EdgeStats
from ferry.proxy.routes import Backend, RouteTable, ServicePorts


class FakeProber:
    def __init__(self) -> None:
        self.passing: dict[tuple[str, int], bool] = {}
        self.calls = 0

    async def http_get(
        self, address: str, port: int, path: str, headers: dict[str, str], timeout: float
    ) -> bool:
        self.calls += 1
        return self.passing.get((address, port), True)

    async def tcp_connect(self, address: str, port: int, timeout: float) -> bool:
        self.calls += 1
        return self.passing.get((address, port), True)


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
    async def scenario() -> list[dict[str, bool]]:
        book, prober = HealthBook(), FakeProber()
        checker = HealthChecker(book, prober)
        checker.sync(RouteTable(1, {"web": (checked("m1", "10.0.0.1"), checked("m2", "10.0.0.2"))}))
        seen = []
        prober.passing[("10.0.0.2", 8080)] = False
        await asyncio.sleep(0.1)
        seen.append(dict(book.health))
        prober.passing[("10.0.0.2", 8080)] = True
        await asyncio.sleep(0.1)
        seen.append(dict(book.health))
        checker.sync(RouteTable(2, {}))  # machines gone: checks stop
        await checker.close()
        return seen

    assert asyncio.run(scenario()) == [{"m2": False}, {}]


def test_a_machine_failing_its_first_check_is_back_long_before_the_interval() -> None:
    """A new machine probed before it bound its port must not sit out a whole interval."""

    async def scenario() -> tuple[dict[str, bool], dict[str, bool]]:
        book, prober = HealthBook(), FakeProber()
        prober.passing[("10.0.0.3", 8080)] = False  # not listening yet
        checker = HealthChecker(book, prober)
        checker.sync(RouteTable(1, {"web": (checked("m3", "10.0.0.3", interval="10s"),)}))
        await asyncio.sleep(0.05)
        before = dict(book.health)
        prober.passing[("10.0.0.3", 8080)] = True  # now it listens
        await asyncio.sleep(0.6)
        after = dict(book.health)
        await checker.close()
        return before, after

    before, after = asyncio.run(scenario())
    assert before == {"m3": False}
    assert after == {}  # back in rotation within a second, though the interval is 10 s


def test_refused_connect_is_a_short_cooldown() -> None:
    async def scenario() -> list[dict[str, bool]]:
        book = HealthBook(cooldown=0.05)
        book.mark_refused("m1")
        first = dict(book.health)
        await asyncio.sleep(0.1)
        return [first, dict(book.health)]

    assert asyncio.run(scenario()) == [{"m1": False}, {}]


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
