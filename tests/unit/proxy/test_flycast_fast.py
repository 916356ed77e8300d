"""Flycast's kernel path: which raw TCP Flycast ports the edge's kernel forwards, and to
which machines (``ferry.proxy.flycast_fast``), as nftables (``ferry.net.flycast_fast``)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable

import pytest

from ferry.errors import UnavailableError
from ferry.model import CheckConfig, DesiredState, MachineState
from ferry.model.machine import Concurrency
from ferry.model.mesh import EdgeFastPlan
from ferry.net import sixpn
from ferry.net.flycast import FlycastEntry, FlycastTable, flycast_address
from ferry.net.flycast_fast import FastPort, fast_ruleset
from ferry.net.flycast_lan import LanHost, host_routes
from ferry.net.flycast_lan_sync import EdgeLanView
from ferry.net.nftables import check_ruleset
from ferry.proxy.flycast_fast import (
    REPUBLISH_SECONDS,
    RETRY_SECONDS,
    FlycastFastPath,
    plan_fast_ports,
)
from ferry.proxy.health import HealthBook
from ferry.proxy.routes import Backend, RouteTable, ServicePorts

ORG = 0x10
DB = flycast_address(ORG, 1)
RTT = {"ams": 0.0, "iad": 80.0}
CHECK = CheckConfig(type="http", port=8008, path="/primary")
LAN = tuple(
    LanHost(f"ams-{n}", ipaddress.IPv4Address(f"10.1.16.{9 + n}"),
            (str(sixpn.host_prefix(ORG, n)),), f"02:00:00:00:00:0{n}")
    for n in (1, 2)
)  # fmt: skip


def _member(
    machine_id: str, region: str, host: int, *, autostop: str = "off", hard: int | None = None
) -> Backend:
    service = ServicePorts(
        internal_port=5433,
        ports=(5432,),
        checks=(CHECK,),
        autostop=autostop,
        concurrency=Concurrency(hard_limit=hard),
    )
    return Backend(
        machine_id, machine_id, "db", region, f"10.1.{host}.2", MachineState.STARTED,
        DesiredState.STARTED, (service,), sixpn=str(sixpn.machine_address(ORG, host, 1)),
    )  # fmt: skip


def _plan(
    backends: tuple[Backend, ...], book: HealthBook, lan: tuple[LanHost, ...] = LAN
) -> tuple[FastPort, ...]:
    flycast = FlycastTable.of(1, [FlycastEntry(DB, "db", ORG)])
    routes = RouteTable(1, {"db": backends})
    return plan_fast_ports(flycast, routes, RTT, book.health, book.reported, lan)


def _address(host: int) -> ipaddress.IPv6Address:
    return sixpn.machine_address(ORG, host, 1)


def test_the_kernel_forwards_a_postgres_port_to_the_member_whose_check_passes() -> None:
    members = (_member("a1", "ams", 1), _member("a2", "ams", 2), _member("i1", "iad", 3))
    book = HealthBook()
    assert _plan(members, book) == ()  # no check has answered: the listeners take it
    book.set_check("a1", "primary", True)
    book.set_check("a2", "primary", False)
    book.set_check("i1", "primary", False)
    (port,) = _plan(members, book)
    assert (port.address, port.port, port.targets, port.target_port) == (
        DB, 5432, (_address(1),), 5433,
    )  # fmt: skip
    assert port.organization == sixpn.org_prefix(ORG)
    # Failover: the other ams member passes, the old primary fails.
    book.set_check("a1", "primary", False)
    book.set_check("a2", "primary", True)
    assert _plan(members, book)[0].targets == (_address(2),)
    # The primary moved to iad: not on the edge's LAN, the listeners splice it.
    book.set_check("a2", "primary", False)
    book.set_check("i1", "primary", True)
    assert _plan(members, book) == ()


def test_ports_the_kernel_cannot_serve_as_the_service_asks_stay_with_the_listeners() -> None:
    book = HealthBook()
    for machine_id in ("a1", "a2"):
        book.set_check(machine_id, "primary", True)
    both = (_member("a1", "ams", 1), _member("a2", "ams", 2))
    assert _plan(both, book)[0].targets == (_address(1), _address(2))
    assert _plan((_member("a1", "ams", 1, autostop="stop"),), book) == ()
    assert _plan((_member("a1", "ams", 1, hard=25),), book) == ()
    assert _plan(both, book, LAN[:1]) == ()  # a2's host is not (yet) a checked LAN host
    assert _plan(both, book, ()) == ()


def test_the_ruleset_checks_the_organization_and_balances_over_several_machines() -> None:
    one = FastPort(DB, 5432, sixpn.org_prefix(ORG), (_address(1),), 5433, "db")
    two = FastPort(DB, 7000, sixpn.org_prefix(ORG), (_address(1), _address(2)), 7001, "db")
    source = ipaddress.IPv6Address("fdaa::a:0:0:1")
    rules = fast_ruleset([one, two], source)
    check_ruleset(rules)
    assert f"meta iiftype ether ip6 daddr {DB} tcp dport 5432 ip6 saddr fdaa:0:10::/48" in rules
    assert f"dnat ip6 to [{_address(1)}]:5433" in rules
    assert "numgen inc mod 2 map" in rules
    assert f"snat ip6 to {source}" in rules
    empty = fast_ruleset([one], None)  # no mesh address yet: nothing forwarded
    check_ruleset(empty)
    assert "dnat" not in empty and "snat" not in empty


def test_a_lan_host_routes_the_edges_own_address_over_the_lan() -> None:
    gateway = ipaddress.IPv6Address("fe80::a01:1001")
    routes = host_routes(["fdaa:0:10:ffff:ffff::/80"], gateway, "eth0", "fdaa::a:0:0:1")
    assert "fdaa::a:0:0:1/128 via fe80::a01:1001 dev eth0" in routes
    assert host_routes([], None, "eth0", "fdaa::a:0:0:1") == set()


def _one_member_path(
    book: HealthBook,
    apply: Callable[[str | None, str], None],
    publish: Callable[[EdgeFastPlan], None] | None = None,
    clock: Callable[[], float] = lambda: 0.0,
) -> FlycastFastPath:
    """The edge's loop over one ams member on its LAN, with fakes for nft and the API."""
    view = EdgeLanView()
    view.hosts, view.source = LAN, ipaddress.IPv6Address("fdaa::a:0:0:1")
    routes = RouteTable(1, {"db": (_member("a1", "ams", 1),)})
    flycast = FlycastTable.of(1, [FlycastEntry(DB, "db", ORG)])
    fast = FlycastFastPath(
        lambda: flycast, lambda: routes, RTT, book, view,
        apply=apply, publish=publish, clock=clock,
    )  # fmt: skip
    fast._forwarding = True  # the sysctl is the integration tests' business
    return fast


def test_the_edge_loads_the_table_only_when_it_changes_and_empties_it_on_close() -> None:
    applied: list[str] = []
    book = HealthBook()
    fast = _one_member_path(book, lambda _netns, script: applied.append(script))

    async def scenario() -> None:
        await fast.sync()
        await fast.sync()
        book.set_check("a1", "primary", True)
        await fast.sync()
        await fast.close()

    asyncio.run(scenario())
    assert len(applied) == 3
    assert "dnat" not in applied[0] and "dnat" in applied[1] and "dnat" not in applied[2]


def test_the_edge_publishes_what_its_kernel_forwards_on_change_and_now_and_then() -> None:
    told: list[EdgeFastPlan] = []
    down = [False]

    def publish(plan: EdgeFastPlan) -> None:
        if down[0]:
            raise UnavailableError("control plane unreachable")
        told.append(plan)

    now = [0.0]
    book = HealthBook()
    fast = _one_member_path(book, lambda _netns, _script: None, publish, lambda: now[0])

    async def step() -> None:
        await fast.sync()
        await fast.publish_due()

    asyncio.run(step())
    assert told == [EdgeFastPlan()]  # nothing forwarded yet, said so
    book.set_check("a1", "primary", True)
    asyncio.run(step())
    assert len(told) == 2 and told[1].ports[0].targets == [str(_address(1))]
    asyncio.run(step())
    assert len(told) == 2  # unchanged, not due
    now[0] += REPUBLISH_SECONDS
    down[0] = True
    with pytest.raises(UnavailableError):  # the caller's to log (``run``)
        asyncio.run(step())
    down[0] = False
    asyncio.run(step())
    assert len(told) == 2  # retried only after RETRY_SECONDS
    now[0] += RETRY_SECONDS
    asyncio.run(step())
    assert len(told) == 3 and told[2] == told[1]
