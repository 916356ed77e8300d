"""Cordon through the real control plane and a real edge: a cordoned machine gets no requests.

The control plane is its own process; the edge follows its ``/v1/routes``
with the real ``RouteWatcher`` and ``FerryClient``. The two machines are
small HTTP servers on their private addresses (127.0.0.2 and 127.0.0.3 of a
loopback "host subnet"), so the edge connects to them as it would to machines.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.model import MachineConfig
from ferry.proxy.server import EdgeProxy
from ferry.proxy.watch import RouteWatcher

from ...server_process import ServerProcess
from .harness import AppBackend, edge_client, run, running_proxy

pytestmark = pytest.mark.integration


def _config(port: int) -> MachineConfig:
    return MachineConfig.model_validate(
        {
            "image": "registry.local/web:1",
            "services": [
                {
                    "internal_port": port,
                    "ports": [{"port": 80, "handlers": ["http"]}],
                    "concurrency": {"type": "requests", "soft_limit": 20, "hard_limit": 25},
                }
            ],
        }
    )


async def _table_becomes(watcher: RouteWatcher, wanted: set[str]) -> None:
    """Follow the control plane (one long-poll per step, as the edge's watcher does)
    until the edge's table holds exactly the machines ``wanted`` (bounded)."""
    for _ in range(20):
        await asyncio.to_thread(watcher.poll_once, 2.0)
        if {b.machine_id for b in watcher.current().backends("web")} == wanted:
            return
    raise AssertionError(f"the edge's routing table never became {sorted(wanted)}")


async def _served_by(proxy: EdgeProxy, count: int) -> list[str]:
    async with edge_client(proxy) as http:
        answers = [await http.get("/") for _ in range(count)]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [a.text for a in answers]


def test_a_cordoned_machine_gets_no_requests_and_uncordon_brings_it_back(
    plane: ServerProcess, tmp_path: Path
) -> None:
    with plane.client() as client:
        run(_scenario(client, tmp_path), timeout=90)


async def _scenario(client: FerryClient, tmp_path: Path) -> None:
    client.register_host(
        host_id="ams-1",
        region="ams",
        address="127.0.0.1",
        cpus=4,
        memory_mb=4096,
        machine_subnet="127.0.0.0/24",
    )
    client.create_app("web")
    one = await AppBackend("one").start(host="127.0.0.2")
    two = await AppBackend("two").start(host="127.0.0.3")
    try:
        machines = []
        for backend in (one, two):
            machine = client.create_machine("web", _config(backend.port))
            client.report_status(
                "ams-1", machine.id, "started", machine.instance_id, "start", "started"
            )
            machines.append(machine)
        assert [m.host_ip for m in machines] == ["127.0.0.2", "127.0.0.3"]
        first, second = machines

        watcher = RouteWatcher(client, tmp_path / "routes.json")
        async with running_proxy(watcher.current) as proxy:  # type: ignore[arg-type]
            await _table_becomes(watcher, {first.id, second.id})
            assert set(await _served_by(proxy, 30)) == {"one", "two"}

            await asyncio.to_thread(client.cordon_machine, "web", first.id)
            assert client.get_machine("web", first.id).cordoned
            await _table_becomes(watcher, {second.id})
            assert set(await _served_by(proxy, 30)) == {"two"}
            assert len(two.requests) >= 30

            await asyncio.to_thread(client.uncordon_machine, "web", first.id)
            await _table_becomes(watcher, {first.id, second.id})
            assert set(await _served_by(proxy, 40)) == {"one", "two"}
    finally:
        await one.stop()
        await two.stop()
