"""The ``.internal`` resolver for real: bound to fdaa::3:53 in a host namespace,
asked by 6PN addresses of a client namespace, with dnspython over UDP and TCP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import dns.message
import dns.query
import dns.rcode
import pytest

from ferry.net import sixpn
from ferry.net.dns_server import InternalDnsServer, load_records, save_records
from ferry.net.internal_records import InternalRecords, MachineRecord

from ...dns_netns import DnsNamespaces, thread_in
from ...dns_upstream import start_upstream

ACME, OTHER = 0x51, 0x52
ACME_ASKER = str(sixpn.machine_address(ACME, 2, 40))
OTHER_ASKER = str(sixpn.machine_address(OTHER, 2, 41))
DNS = str(sixpn.DNS_ADDRESS)
T = TypeVar("T")


def machine(id: str, app: str, region: str, number: int, network: int = ACME) -> MachineRecord:
    address = sixpn.machine_address(network, 1, number)
    return MachineRecord(id, app, network, region, "app", address, True)


def host_copy() -> InternalRecords:
    machines = [machine("w1", "web", "ams", 1), machine("w2", "web", "sin", 2)]
    machines += [machine(f"big{n:03d}", "big", "ams", 100 + n) for n in range(120)]
    machines.append(machine("s1", "secret", "ams", 1, network=OTHER))
    return InternalRecords(machines)


@pytest.fixture
def namespaces() -> Iterator[DnsNamespaces]:
    built = DnsNamespaces("fdt")
    try:
        built.add_client_address(ACME_ASKER)
        built.add_client_address(OTHER_ASKER)
        yield built
    finally:
        built.close()


def query(
    name: str, rdtype: str, source: str, *, tcp_fallback: bool = False
) -> dns.message.Message:
    """One query from ``source`` to fdaa::3:53 (run in the client namespace)."""
    q = dns.message.make_query(name, rdtype)
    if tcp_fallback:
        response, used_tcp = dns.query.udp_with_fallback(q, DNS, timeout=3, source=source)
        assert used_tcp, "a large answer should have been truncated over UDP"
        return response
    return dns.query.udp(q, DNS, timeout=3, source=source)


def test_machines_resolve_their_organizations_names_over_6pn(
    namespaces: DnsNamespaces, tmp_path: Path
) -> None:
    # The server starts from the host's copy on disk, as with the control plane down.
    copy = tmp_path / "internal-dns.json"
    save_records(copy, host_copy())
    client = thread_in(namespaces.client)

    async def ask(call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(client, call)

    async def scenario() -> None:
        upstream, upstream_address = await start_upstream("::1", {"example.test": "192.0.2.7"})
        server = InternalDnsServer(load_records(copy), region="ams", upstream=upstream_address)
        await server.start(DNS, 53)
        try:
            web = await ask(lambda: query("web.internal", "AAAA", ACME_ASKER))
            addresses = sorted(rd.address for rd in web.answer[0])
            assert addresses == [str(sixpn.machine_address(ACME, 1, n)) for n in (1, 2)]
            sin = await ask(lambda: query("SIN.web.internal", "AAAA", ACME_ASKER))
            assert [rd.address for rd in sin.answer[0]] == [str(sixpn.machine_address(ACME, 1, 2))]
            nodata = await ask(lambda: query("web.internal", "A", ACME_ASKER))
            assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer

            # The same names from another organization's address: nothing leaks.
            theirs = await ask(lambda: query("web.internal", "AAAA", OTHER_ASKER))
            assert theirs.rcode() == dns.rcode.NXDOMAIN
            apps = await ask(lambda: query("_apps.internal", "TXT", OTHER_ASKER))
            assert b"".join(apps.answer[0][0].strings) == b"secret"

            # A list too long for 512 bytes of UDP comes back whole over TCP.
            vms = await ask(lambda: query("vms.big.internal", "TXT", ACME_ASKER, tcp_fallback=True))
            listed = b"".join(vms.answer[0][0].strings).decode().split(",")
            assert len(listed) == 120 and listed[0] == "big000 ams"

            # Other names go to the upstream resolver.
            forwarded = await ask(lambda: query("example.test", "A", ACME_ASKER))
            assert [rd.address for rd in forwarded.answer[0]] == ["192.0.2.7"]
            assert upstream.queries == ["example.test"]

            # Garbage from a machine gets FORMERR; the server goes on answering.
            def garbage() -> bytes:
                with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
                    sock.settimeout(3)
                    sock.bind((ACME_ASKER, 0))
                    # A header announcing one question, then a cut-off name.
                    sock.sendto(b"\xab\xcd\x01\x00\x00\x01" + bytes(6) + b"\x09web", (DNS, 53))
                    return sock.recv(512)

            formerr = dns.message.from_wire(await ask(garbage))
            assert formerr.id == 0xABCD and formerr.rcode() == dns.rcode.FORMERR

            # A machine started: the agent swaps the records; the next query sees it.
            started = [*host_copy().machines, machine("w3", "web", "ams", 3)]
            server.update(InternalRecords(started))
            new = await ask(lambda: query("w3.vm.web.internal", "AAAA", ACME_ASKER))
            assert [rd.address for rd in new.answer[0]] == [str(sixpn.machine_address(ACME, 1, 3))]
        finally:
            await server.close()
            upstream.transport.close()

    try:
        with thread_in(namespaces.host) as host:
            host.submit(asyncio.run, scenario()).result(timeout=60)
    finally:
        client.shutdown()
