"""The edge's per-app WAF policy with a fake engine: what is inspected, what is kept."""

from __future__ import annotations

import asyncio

from ferry.errors import ValidationError
from ferry.model.machine_waf import WafConfig
from ferry.proxy.routes import RouteTable
from ferry.proxy.waf_events import WafEventBuffer
from ferry.proxy.waf_gate import WafGate
from ferry.proxy.waf_metrics import WafStats
from ferry.waf.engine import (
    Headers,
    Inspection,
    WafEngineError,
    WafOutcome,
    WafRequest,
    WafRulesError,
)


class FakeEngine:
    """Loads every config but those with ``paranoia`` in ``broken``."""

    def __init__(self, broken: set[int]) -> None:
        self.broken = broken
        self.loaded: list[WafConfig] = []

    async def load(self, config: WafConfig) -> None:
        await asyncio.sleep(0)
        if config.paranoia in self.broken:
            raise WafRulesError(f"the rule set does not load: paranoia {config.paranoia}")
        self.loaded.append(config)

    async def request(self, config: WafConfig, request: WafRequest) -> Inspection:
        raise ValidationError("not used")

    async def finish(
        self, inspection: Inspection, response: tuple[int, str, Headers] | None
    ) -> WafOutcome:
        raise ValidationError("not used")

    async def close(self) -> None:
        return None


class Edge:
    waf: object = None


def table(version: int, **apps: WafConfig) -> RouteTable:
    return RouteTable(version, {}, {}, apps)


def test_the_gate_attaches_only_while_an_app_is_inspected() -> None:
    async def scenario() -> None:
        gate = WafGate(FakeEngine(set()), WafEventBuffer(), WafStats("ams"))
        edge = Edge()
        gate.serve(edge)  # type: ignore[arg-type]
        assert edge.waf is None  # WAF off everywhere: the request path checks one attribute
        gate.sync(table(1, web=WafConfig(mode="block")))
        await gate.settled()
        assert edge.waf is gate and gate.active == {"web": WafConfig(mode="block")}
        gate.sync(table(2))
        assert edge.waf is None and gate.active == {}

    asyncio.run(scenario())


def test_a_rule_set_that_fails_keeps_the_last_good_one_and_is_not_retried() -> None:
    async def scenario() -> None:
        engine = FakeEngine({3})
        stats = WafStats("ams")
        gate = WafGate(engine, WafEventBuffer(), stats)
        good, bad = WafConfig(mode="block"), WafConfig(mode="block", paranoia=3)
        gate.sync(table(1, web=good))
        await gate.settled()
        gate.sync(table(2, web=bad))
        await gate.settled()
        assert gate.active == {"web": good}
        assert "paranoia 3" in gate.failed["web"] and stats.load_failures == {"web": 1}
        gate.sync(table(3, web=bad))  # the next table: the same bad settings are not reloaded
        await gate.settled()
        assert stats.load_failures == {"web": 1}
        fixed = WafConfig(mode="detect", paranoia=4)
        gate.sync(table(4, web=fixed))
        await gate.settled()
        assert gate.active == {"web": fixed} and "web" not in gate.failed

    asyncio.run(scenario())


def test_an_app_whose_first_rule_set_fails_is_not_inspected() -> None:
    async def scenario() -> None:
        gate = WafGate(FakeEngine({2}), WafEventBuffer(), WafStats("ams"))
        edge = Edge()
        gate.serve(edge)  # type: ignore[arg-type]
        gate.sync(table(1, web=WafConfig(mode="block", paranoia=2)))
        await gate.settled()
        assert edge.waf is None and "web" in gate.failed

    asyncio.run(scenario())


class FlakyEngine(FakeEngine):
    """Its worker dies during the first load (not the rules' fault)."""

    def __init__(self) -> None:
        super().__init__(set())
        self.failures = 1

    async def load(self, config: WafConfig) -> None:
        if self.failures:
            self.failures -= 1
            raise WafEngineError("a WAF worker stopped")
        await super().load(config)


def test_a_worker_that_dies_while_compiling_is_tried_again() -> None:
    async def scenario() -> None:
        stats = WafStats("ams")
        gate = WafGate(FlakyEngine(), WafEventBuffer(), stats)
        gate.sync(table(1, web=WafConfig(mode="block")))
        await gate.settled()
        assert gate.active == {"web": WafConfig(mode="block")} and stats.load_failures == {}

    asyncio.run(scenario())
