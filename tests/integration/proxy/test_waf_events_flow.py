"""WAF events end to end: a real edge reports to a real control plane; `ferry waf events`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from ferry.cli.context import CliState
from ferry.cli.main import app as cli_app
from ferry.client import FerryClient
from ferry.model.machine_waf import WafConfig, WafEvent
from ferry.proxy.routes import RouteTable
from ferry.proxy.waf_events import ship_waf_events
from ferry.waf.workers import WorkerEngine

from ...served_app import served_control_plane
from .harness import TableBox, backend_entry, backends, edge_client, run, running_proxy

ADMIN = "waf-flow-admin-token"


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    with served_control_plane(tmp_path, ADMIN) as url:
        yield url


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _admin_of(http: httpx.Client, slug: str, email: str) -> str:
    created = http.post("/v1/orgs", json={"slug": slug, "admin_email": email})
    assert created.status_code == 201, created.text
    invitation = created.json()["admin_invitation"]["invitation"]
    accepted = http.post("/v1/invitations/accept", json={"invitation": invitation})
    assert accepted.status_code == 201, accepted.text
    token: str = accepted.json()["token"]
    return token


def _ferry(base_url: str, token: str, args: list[str]) -> Result:
    state = CliState(client_factory=lambda: FerryClient(base_url, token))
    return CliRunner().invoke(cli_app, args, obj=state, env={"COLUMNS": "250"})


def test_blocked_requests_reach_ferry_waf_events_with_every_rule_id(base_url: str) -> None:
    with httpx.Client(base_url=base_url, headers=_bearer(ADMIN)) as http:
        alice = _admin_of(http, "acme", "alice@acme.test")
        bob = _admin_of(http, "globex", "bob@globex.test")
        made = http.post("/v1/apps", json={"app_name": "web"}, headers=_bearer(alice))
        assert made.status_code == 201, made.text
        minted = http.post("/v1/tokens", json={"kind": "edge", "region": "ams", "name": "edge-ams"})
        assert minted.status_code == 201, minted.text
        edge_token = minted.json()["token"]
    edge_api = FerryClient(base_url, edge_token)
    seen: dict[str, int] = {}

    async def scenario() -> None:
        async with backends("app") as (app,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", app))
            box.table = RouteTable(2, box.table.apps, {}, {"web": WafConfig(mode="block")})
            async with running_proxy(box, waf_engine=WorkerEngine(1)) as proxy:
                assert proxy.waf is not None
                for _ in range(100):
                    await proxy.waf.settled()
                    if proxy.http.waf is not None:
                        break
                    await asyncio.sleep(0.05)
                loop = asyncio.get_running_loop()

                async def send(batch: list[WafEvent]) -> None:
                    await loop.run_in_executor(None, edge_api.report_waf_events, "ams", batch)

                shipper = loop.create_task(ship_waf_events(send, proxy.waf_events, interval=0.1))
                try:
                    async with edge_client(proxy) as client:
                        ok = await client.get("/", headers={"User-Agent": "Mozilla/5.0"})
                        assert ok.status_code == 200
                        attack = await client.get(
                            "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
                            headers={"User-Agent": "Mozilla/5.0"},
                        )
                        assert attack.status_code == 403
                        seen[attack.headers["fly-request-id"]] = 403
                    for _ in range(100):
                        if not proxy.waf_events.events and proxy.waf_stats.actions.get(
                            ("web", "blocked")
                        ):
                            break
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.3)  # the last POST answered
                finally:
                    shipper.cancel()
                assert not app.requests[1:], "the attack reached the app"

    run(scenario(), timeout=60)
    shown = _ferry(base_url, alice, ["waf", "events", "-a", "web", "--json", "--since", "10m"])
    assert shown.exit_code == 0, shown.output
    events = json.loads(shown.stdout)
    assert [e["request_id"] for e in events] == list(seen)
    (event,) = events
    assert event["action"] == "blocked" and event["status"] == 403
    assert all(isinstance(i, int) for i in event["rule_ids"]) and 949110 in event["rule_ids"]
    assert any(941000 <= i < 942000 for i in event["rule_ids"])  # the XSS family
    assert event["region"] == "ams" and event["client_ip"] == "127.0.0.1"
    table = _ferry(base_url, alice, ["waf", "events", "-a", "web"])
    assert table.exit_code == 0 and event["request_id"] in table.stdout
    refused = _ferry(base_url, bob, ["waf", "events", "-a", "web", "--json"])
    assert refused.exit_code == 1 and "app 'web' not found" in refused.stderr
