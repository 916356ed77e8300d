"""The WAF through a real edge: ModSecurity + CRS in worker processes, a real backend."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import InvalidStatus

from ferry.model.machine_waf import WafConfig
from ferry.proxy.routes import RouteTable
from ferry.proxy.server import EdgeProxy
from ferry.waf.rules import RuleFiles, default_rule_files
from ferry.waf.workers import WorkerEngine

from .harness import (
    DOMAIN,
    AppBackend,
    TableBox,
    backend_entry,
    backends,
    edge_client,
    run,
    running_proxy,
)

ATTACKS = {
    "sql injection": "/search?q=1%27%20OR%201%3D1--",
    "xss": "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "path traversal": "/files?name=..%2F..%2F..%2Fetc%2Fpasswd",
    "shell injection": "/ping?host=127.0.0.1%3Bcat%20%2Fetc%2Fpasswd",
}
BENIGN = ["/", "/products?id=42&sort=price", "/search?q=blue+shoes"]


def with_waf(box: TableBox, config: WafConfig | None) -> None:
    waf = {"web": config} if config is not None else {}
    box.table = RouteTable(box.table.version + 1, box.table.apps, box.table.statics, waf)


async def waf_ready(proxy: EdgeProxy) -> None:
    assert proxy.waf is not None
    for _ in range(200):  # the edge follows the table every 0.5 s, then compiles
        await proxy.waf.settled()
        if proxy.http.waf is not None or proxy.waf.failed:
            return
        await asyncio.sleep(0.05)


async def started(box: TableBox, app: AppBackend, config: WafConfig | None) -> TableBox:
    box.set(backend_entry("m1", "ams", app))
    with_waf(box, config)
    return box


def paths_seen(app: AppBackend) -> list[str]:
    return [r.path for r in app.requests]


@pytest.mark.parametrize("mode", ["block", "detect"])
def test_attacks_are_blocked_or_logged_and_benign_traffic_passes(mode: str) -> None:
    async def scenario() -> None:
        async with backends("app") as (app,):
            box = await started(TableBox(), app, WafConfig(mode=mode))
            engine = WorkerEngine(2)
            async with running_proxy(box, waf_engine=engine) as proxy:
                await waf_ready(proxy)
                async with edge_client(proxy) as http:
                    for path in BENIGN:
                        r = await http.get(path, headers={"User-Agent": "Mozilla/5.0"})
                        assert r.status_code == 200 and r.text == "app", path
                        assert r.headers["fly-request-id"]
                    for name, path in ATTACKS.items():
                        before = len(app.requests)
                        r = await http.get(path, headers={"User-Agent": "Mozilla/5.0"})
                        rid = r.headers["fly-request-id"]
                        if mode == "block":
                            assert r.status_code == 403, name
                            assert rid in r.text and "942" not in r.text
                            assert len(app.requests) == before, f"{name} reached the app"
                        else:
                            assert r.status_code == 200, name
                            assert len(app.requests) == before + 1
                await asyncio.sleep(0)
                for _ in range(100):
                    if len(proxy.waf_events.events) >= len(ATTACKS):
                        break
                    await asyncio.sleep(0.05)
                events = list(proxy.waf_events.events)
                assert [e.action for e in events] == [
                    "blocked" if mode == "block" else "detected"
                ] * len(ATTACKS)
                assert all(e.rule_ids and 949110 in e.rule_ids for e in events)
                assert 942100 in events[0].rule_ids and events[0].anomaly_score >= 5
                assert events[0].method == "GET" and events[0].path == ATTACKS["sql injection"]
                assert events[0].client_ip == "127.0.0.1"
                assert proxy.metrics_address is not None
                async with httpx.AsyncClient() as scrape:
                    url = f"http://127.0.0.1:{proxy.metrics_address[1]}/metrics"
                    metrics = (await scrape.get(url)).text
                assert (
                    'ferry_waf_rule_matches_count{app="web",region="ams",rule="942100"}' in metrics
                )

    run(scenario(), timeout=60)


def test_bodies_over_the_limit_get_413_in_block_mode_and_pass_whole_in_detect_mode() -> None:
    async def scenario() -> None:
        async with backends("app") as (app,):
            box = await started(TableBox(), app, WafConfig(mode="block", body_limit=1024))
            async with running_proxy(box, waf_engine=WorkerEngine(1)) as proxy:
                await waf_ready(proxy)
                async with edge_client(proxy) as http:
                    small = await http.post("/echo", content=b"a=" + b"x" * 500)
                    assert small.status_code == 200 and len(small.content) == 502
                    big = await http.post("/echo", content=b"a=" + b"x" * 5000)
                    assert big.status_code == 413
                    assert paths_seen(app) == ["/echo"]
                with_waf(box, WafConfig(mode="detect", body_limit=1024))
                await waf_ready(proxy)
                for _ in range(100):
                    if proxy.waf is not None and proxy.waf.active["web"].mode == "detect":
                        break
                    await asyncio.sleep(0.05)
                async with edge_client(proxy) as http:
                    big = await http.post("/echo", content=b"a=" + b"x" * 5000)
                    assert big.status_code == 200 and len(big.content) == 5002

    run(scenario(), timeout=60)


def test_a_waf_change_keeps_the_connection_and_a_bad_rule_set_keeps_the_last_good_one(
    tmp_path: Path,
) -> None:
    real = default_rule_files()
    rules = tmp_path / "rules"
    shutil.copytree(real.crs_rules, rules)
    files = RuleFiles(real.recommended, real.unicode_mapping, real.crs_setup, rules)

    async def scenario() -> None:
        async with backends("app") as (app,):
            box = await started(TableBox(), app, WafConfig(mode="detect"))
            async with running_proxy(box, waf_engine=WorkerEngine(1, files)) as proxy:
                await waf_ready(proxy)
                assert proxy.waf is not None
                async with edge_client(proxy) as http:
                    attack = ATTACKS["sql injection"]
                    assert (await http.get(attack)).status_code == 200
                    with_waf(box, WafConfig(mode="block"))
                    for _ in range(100):
                        if proxy.waf.active["web"].mode == "block":
                            break
                        await asyncio.sleep(0.05)
                    r = await http.get(attack)  # the same kept-alive connection
                    assert r.status_code == 403
                    assert app.connections == 1
                    (rules / "REQUEST-999-BROKEN.conf").write_text("SecNotADirective On\n")
                    with_waf(box, WafConfig(mode="block", paranoia=2))
                    for _ in range(100):
                        if proxy.waf.failed:
                            break
                        await asyncio.sleep(0.05)
                    assert "does not load" in proxy.waf.failed["web"]
                    assert proxy.waf.active["web"] == WafConfig(mode="block")
                    assert (await http.get(attack)).status_code == 403
                    assert (await http.get("/")).status_code == 200
                    assert proxy.waf_stats.load_failures == {"web": 1}

    run(scenario(), timeout=60)


def test_websocket_upgrades_are_inspected_then_tunnelled() -> None:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async def scenario() -> None:
        async with ws_serve(echo, "127.0.0.1", 0) as server:
            fake = AppBackend("ws")
            fake.port = next(iter(server.sockets)).getsockname()[1]
            box = TableBox()
            box.set(backend_entry("m-ws", "ams", fake))
            with_waf(box, WafConfig(mode="block"))
            async with running_proxy(box, waf_engine=WorkerEngine(1)) as proxy:
                await waf_ready(proxy)
                assert proxy.http_address is not None
                base = f"ws://127.0.0.1:{proxy.http_address[1]}"
                headers = {"Host": f"web.{DOMAIN}", "User-Agent": "Mozilla/5.0"}
                async with ws_connect(f"{base}/socket", additional_headers=headers) as ws:
                    for i in range(5):  # frames pass unchanged: '<script>' is not inspected
                        await ws.send(f"<script>{i}</script>")
                        assert await ws.recv() == f"<script>{i}</script>"
                with pytest.raises(InvalidStatus) as refused:
                    attack = f"{base}/socket?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
                    async with ws_connect(attack, additional_headers=headers):
                        pass
                assert refused.value.response.status_code == 403

    run(scenario(), timeout=60)
