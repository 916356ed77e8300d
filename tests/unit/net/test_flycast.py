"""Flycast: the address layout, the edge's table (address → app, who may dial it), the
ports an app serves there, the edge's route listing, the mesh's routing of Flycast
prefixes to a host's region edge, and ``<app>.flycast`` answers."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from datetime import UTC, datetime

import dns.message
import dns.rcode
import pytest

from ferry.agent.mesh_loop import flycast_edge, peers_of
from ferry.errors import ValidationError
from ferry.model import DesiredState, Machine, MachineConfig, MachineState
from ferry.model.mesh import MeshNode, MeshNodeKind, MeshSnapshot
from ferry.net import peer_gateway, sixpn
from ferry.net.flycast import (
    FLYCAST_HOST,
    FlycastEntry,
    FlycastTable,
    flycast_address,
    flycast_number,
    flycast_prefix,
    is_flycast,
)
from ferry.net.internal_dns import answer
from ferry.net.internal_records import InternalRecords
from ferry.proxy.flycast import (
    FlycastListeners,
    flycast_ports,
    flycast_tcp_ports,
    local_flycast_routes,
)
from ferry.proxy.headers import EdgeHeaders, build_request_head
from ferry.proxy.http import HttpEdge
from ferry.proxy.routes import Backend, RouteTable, ServicePorts, routes_from_machines

ACME, OTHER = 0x10, 0x20


def test_flycast_addresses_are_in_their_org_and_never_a_machine_or_peer_address() -> None:
    first = flycast_address(ACME, 1)
    assert str(first) == "fdaa:0:10:ffff:ffff::1"
    assert first in sixpn.org_prefix(ACME) and first in flycast_prefix(ACME)
    assert flycast_prefix(ACME).prefixlen == 80
    parsed = sixpn.parse(first)
    assert (parsed.network, parsed.host) == (ACME, FLYCAST_HOST)
    assert sixpn.MAX_HOST < FLYCAST_HOST  # no host is ever numbered like it
    assert not flycast_prefix(ACME).overlaps(sixpn.host_prefix(ACME, sixpn.MAX_HOST))
    assert peer_gateway.peer_prefix(ACME, 1).network_address not in flycast_prefix(ACME)
    assert flycast_number(flycast_address(ACME, 70000)) == (ACME, 70000)
    assert is_flycast(first) and not is_flycast(sixpn.machine_address(ACME, 1, 1))
    assert not is_flycast("10.0.0.1") and not is_flycast("not an address")


@pytest.mark.parametrize("number", [0, 1 << 48])
def test_numbers_out_of_range_are_refused(number: int) -> None:
    with pytest.raises(ValidationError, match="out of range"):
        flycast_address(ACME, number)


def test_lowest_free_host_number_stops_below_the_flycast_host() -> None:
    with pytest.raises(ValidationError, match="taken"):
        sixpn.lowest_free(range(1, 4), highest=3)
    assert sixpn.lowest_free([1, 2], highest=sixpn.MAX_HOST) == 3


def test_the_edge_table_names_the_app_and_admits_its_organization_only() -> None:
    entry = FlycastEntry(flycast_address(ACME, 1), "web", ACME)
    table = FlycastTable.of(7, [entry])
    assert table.lookup(str(flycast_address(ACME, 1))) == entry
    assert table.lookup(str(flycast_address(ACME, 2))) is None
    assert table.lookup("10.0.0.1") is None
    assert table.admits(entry, str(sixpn.machine_address(ACME, 3, 4)))
    assert table.admits(entry, str(peer_gateway.peer_address(ACME, 1)))  # a developer's peer
    assert not table.admits(entry, str(sixpn.machine_address(OTHER, 3, 4)))
    assert not table.admits(entry, str(sixpn.infra_address(2)))  # platform, network 0
    assert not table.admits(entry, "10.1.0.5")
    assert table.apps == {"web"}
    with pytest.raises(ValidationError):
        FlycastEntry(flycast_address(ACME, 1), "web", OTHER)  # not in that network
    with pytest.raises(ValidationError):
        FlycastEntry(sixpn.machine_address(ACME, 1, 1), "web", ACME)  # a machine's address


def _backend(app: str, *services: ServicePorts) -> Backend:
    return Backend(
        "m1", "i1", app, "ams", "10.1.0.2", MachineState.STARTED, DesiredState.STARTED, services
    )


def test_an_app_serves_http_ports_and_raw_tcp_on_flycast_but_not_tls() -> None:
    table = RouteTable(
        1,
        {
            "web": (
                _backend(
                    "web",
                    ServicePorts(
                        8080,
                        ports=(80, 443),
                        handlers=("http", "tls"),
                        force_https=True,
                        http_ports=(80,),
                    ),
                    ServicePorts(9000, ports=(9000,), handlers=("http",), http_ports=(9000,)),
                    ServicePorts(5432, ports=(5432,)),
                    ServicePorts(6379, ports=(6380,), handlers=("tls",)),
                    ServicePorts(53, protocol="udp", ports=(53,)),
                ),
            )
        },
    )
    assert flycast_ports(table, "web") == {80, 9000}
    assert flycast_tcp_ports(table, "web") == {5432}  # spliced; not TLS, not UDP
    assert flycast_ports(table, "nope") == flycast_tcp_ports(table, "nope") == frozenset()


def test_the_edge_reads_back_the_flycast_routes_it_made() -> None:
    shown = (
        f"local {flycast_address(ACME, 1)} dev lo proto kernel metric 1024 pref medium\n"
        "local ::1 dev lo proto kernel metric 0 pref medium\n"
        f"local {sixpn.edge_address(1)} dev fyew1 proto kernel metric 0 pref medium\n"
        f"local {flycast_prefix(ACME)} dev lo metric 1024 pref medium\n"
    )
    assert local_flycast_routes(shown) == {flycast_address(ACME, 1)}


def _node(node_id: str, kind: MeshNodeKind, region: str, n: int) -> MeshNode:
    address = sixpn.infra_address(n) if kind is MeshNodeKind.HOST else sixpn.edge_address(n)
    return MeshNode(
        id=node_id,
        kind=kind,
        region=region,
        public_key=f"key{n}{kind}",
        endpoint=f"10.0.0.{n}:51820",
        address=str(address),
        allowed_ips=[f"{address}/128"],
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_hosts_route_flycast_prefixes_to_their_region_edge_and_edges_to_none() -> None:
    prefix = str(flycast_prefix(ACME))
    snapshot = MeshSnapshot(
        version=3,
        nodes=[
            _node("ams-1", MeshNodeKind.HOST, "ams", 1),
            _node("sin-1", MeshNodeKind.HOST, "sin", 2),
            _node("lhr-1", MeshNodeKind.HOST, "lhr", 3),
            _node("edge-ams", MeshNodeKind.EDGE, "ams", 1),
            _node("edge-sin", MeshNodeKind.EDGE, "sin", 2),
        ],
        flycast=[prefix],
    )
    assert flycast_edge(snapshot, "ams-1") == "edge-ams"
    assert flycast_edge(snapshot, "sin-1") == "edge-sin"
    assert flycast_edge(snapshot, "lhr-1") == "edge-ams"  # no edge of its own: the oldest
    assert flycast_edge(snapshot, "edge-ams") is None
    carried = {p.node_id: p.allowed_ips for p in peers_of(snapshot, "sin-1")}
    assert prefix in carried["edge-sin"] and prefix not in carried["edge-ams"]
    assert all(prefix not in ips for ips in (carried["ams-1"], carried["lhr-1"]))
    from_edge = {p.node_id: p.allowed_ips for p in peers_of(snapshot, "edge-ams")}
    assert all(prefix not in ips for ips in from_edge.values())


def _ask(
    name: str, asker: str, records: InternalRecords, rdtype: str = "AAAA"
) -> dns.message.Message:
    result = answer(dns.message.make_query(name, rdtype).to_wire(), asker, records, "ams")
    assert isinstance(result, dns.message.Message)
    return result


def test_app_flycast_answers_its_organization_only() -> None:
    address = flycast_address(ACME, 1)
    records = InternalRecords(
        apps={ACME: ["web", "plain"], OTHER: ["web"]}, flycast={ACME: {"web": [address]}}
    )
    acme = str(sixpn.machine_address(ACME, 1, 9))
    other = str(sixpn.machine_address(OTHER, 1, 9))
    found = _ask("Web.flycast", acme, records)
    assert found.rcode() == dns.rcode.NOERROR
    assert [rd.address for rrset in found.answer for rd in rrset] == [str(address)]
    assert _ask("web.flycast", acme, records, "A").rcode() == dns.rcode.NOERROR  # NODATA
    assert not _ask("web.flycast", acme, records, "A").answer
    never = _ask("never-existed.flycast", other, records)
    hidden = _ask("web.flycast", other, records)  # another organization's app of that name
    assert hidden.rcode() == never.rcode() == dns.rcode.NXDOMAIN
    assert not hidden.answer and hidden.authority == never.authority
    assert _ask("plain.flycast", acme, records).rcode() == dns.rcode.NXDOMAIN  # no address
    assert _ask("x.web.flycast", acme, records).rcode() == dns.rcode.NXDOMAIN
    assert _ask("web.flycast", "10.0.0.1", records).rcode() == dns.rcode.REFUSED


def test_records_keep_flycast_addresses_across_json_and_refuse_foreign_ones() -> None:
    address = flycast_address(ACME, 2)
    records = InternalRecords(flycast={ACME: {"web": [address]}})
    again = InternalRecords.from_json(records.to_json())
    assert again.flycast_of(ACME, "WEB") == (address,)
    assert InternalRecords.from_json(InternalRecords().to_json()).flycast == {}
    with pytest.raises(ValidationError, match="not in network"):
        InternalRecords(flycast={OTHER: {"web": [address]}})
    assert ipaddress.IPv6Address(str(address)) == address


def test_a_peer_may_reach_its_own_organizations_flycast_addresses_at_the_gateway() -> None:
    peer = peer_gateway.GatewayPeer(
        "laptop", "acme", "k", str(peer_gateway.peer_prefix(ACME, 1)), str(sixpn.org_prefix(ACME))
    )
    rules = peer_gateway.ruleset("fyg1", [peer], sixpn.DNS_ADDRESS)
    assert f"ip6 daddr {flycast_prefix(ACME)} meta l4proto tcp accept" in rules
    assert str(flycast_prefix(OTHER)) not in rules


def test_an_http_service_serves_port_80_on_flycast_and_not_443() -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    http_service = {
        "protocol": "tcp",
        "internal_port": 8080,
        "ports": [
            {"port": 80, "handlers": ["http"], "force_https": True},
            {"port": 443, "handlers": ["tls", "http"]},
        ],
    }
    config = MachineConfig.model_validate({"image": "img", "services": [http_service]})
    m = Machine(
        id="m1", name="m1", app_name="web", state=MachineState.STARTED,
        desired_state=DesiredState.STARTED, region="ams", instance_id="i1",
        private_ip="fdaa:0:10:0:1:0:1:2", host_ip="10.77.17.2", config=config,
        host_id="ams-1", created_at=now, updated_at=now,
    )  # fmt: skip
    assert flycast_ports(routes_from_machines(1, [m]), "web") == {80}


def test_the_backhaul_names_the_app_for_the_next_edge_and_clients_cannot() -> None:
    edge = EdgeHeaders("ams", 80)
    headers = [(b"Host", b"web.flycast"), (b"Ferry-Hop-App", b"web")]
    trusted = build_request_head(b"GET", b"/", list(headers), edge, b"fdaa::1", b"id", trusted=True)
    assert trusted.hop_app == "web" and b"Ferry-Hop-App" not in trusted.head
    client = build_request_head(b"GET", b"/", list(headers), edge, b"fdaa::1", b"id")
    assert client.hop_app is None and b"Ferry-Hop-App" not in client.head


def _free_port() -> int:
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        return int(probe.getsockname()[1])


def test_the_edge_listens_on_the_apps_http_ports_and_closes_what_is_no_flycast_address() -> None:
    port = _free_port()
    service = ServicePorts(8080, ports=(port,), handlers=("http",), http_ports=(port,))
    routes = RouteTable(1, {"web": (_backend("web", service),)})
    flycast = FlycastTable.of(1, [FlycastEntry(flycast_address(ACME, 1), "web", ACME)])

    async def scenario() -> tuple[set[int], bytes, set[int]]:
        tables = {"flycast": flycast}
        edge = HttpEdge("ams", "ferry.test", lambda: routes, {})
        listeners = FlycastListeners(
            edge, lambda: tables["flycast"], lambda: routes, host="::1", manage_routes=False
        )
        await listeners.sync()
        opened = set(listeners.servers)
        # ::1 is no Flycast address: the edge closes the connection without a word.
        reader, writer = await asyncio.open_connection("::1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: web.flycast\r\n\r\n")
        try:
            answer = await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError:
            answer = b""
        writer.close()
        tables["flycast"] = FlycastTable()  # the address is released: the port closes
        await listeners.sync()
        left = set(listeners.servers)
        await listeners.close()
        edge.close()
        return opened, answer, left

    opened, answer, left = asyncio.run(scenario())
    assert opened == {port} and answer == b"" and left == set()
