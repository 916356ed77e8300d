"""The resolver's own behaviour on loopback: garbage survived, forwarding with a
timeout, truncation for UDP, atomic updates. (Real 6PN askers: the integration test.)"""

from __future__ import annotations

import asyncio
import socket
import time

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode

from ferry.net.dns_server import InternalDnsServer, to_wire
from ferry.net.internal_dns import Forward
from ferry.net.internal_records import InternalRecords

from ...dns_upstream import start_upstream
from .internal_fixtures import ACME_ASKER, machine, records


async def started() -> InternalDnsServer:
    server = InternalDnsServer(records(), region="ams")
    await server.start("127.0.0.1", 0)
    return server


def test_garbage_gets_formerr_or_nothing_and_the_server_keeps_answering() -> None:
    async def scenario() -> None:
        server = await started()
        host, port = server.address
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setblocking(False)
        client.connect((host, port))
        loop = asyncio.get_running_loop()
        for garbage in (b"", b"\x01", b"\x12\x34\x01\x00\x00\x01" + b"\xff" * 20, b"\x00" * 600):
            await loop.sock_sendall(client, garbage)
        reply = dns.message.from_wire(await asyncio.wait_for(loop.sock_recv(client, 2048), 2))
        assert reply.id == 0x1234 and reply.rcode() == dns.rcode.FORMERR
        # A real query still gets its answer (REFUSED: loopback is no organization's).
        query = dns.message.make_query("web.internal", "AAAA")
        response = await dns.asyncquery.udp(query, host, port=port, timeout=2)
        assert response.rcode() == dns.rcode.REFUSED
        response = await dns.asyncquery.tcp(query, host, port=port, timeout=2)
        assert response.rcode() == dns.rcode.REFUSED
        assert server.counters.malformed >= 1 and server.counters.dropped >= 1
        client.close()
        await server.close()

    asyncio.run(scenario())


def test_forwarding_relays_the_upstream_and_fails_fast_when_it_is_down() -> None:
    async def scenario() -> None:
        upstream, address = await start_upstream("127.0.0.1", {"example.test": "192.0.2.7"})
        dead, dead_address = await start_upstream("127.0.0.1", {}, silent=True)
        server = InternalDnsServer(records(), region="ams", upstream=address)
        query = dns.message.make_query("example.test", "A")
        result = server.handle(query.to_wire(), ACME_ASKER)
        assert isinstance(result, Forward)
        reply = await server.forward(result.query)
        assert [rd.address for rd in reply.answer[0]] == ["192.0.2.7"]
        assert upstream.queries == ["example.test"]
        server.upstream, server.upstream_timeout = dead_address, 0.2
        began = time.monotonic()
        failed = await server.forward(result.query)
        assert failed.rcode() == dns.rcode.SERVFAIL and time.monotonic() - began < 1.5
        server.upstream = None
        assert (await server.forward(result.query)).rcode() == dns.rcode.SERVFAIL
        upstream.transport.close()
        dead.transport.close()

    asyncio.run(scenario())


def test_update_is_seen_by_the_very_next_query() -> None:
    server = InternalDnsServer(records(), region="ams")
    wire = dns.message.make_query("newapp.internal", "AAAA").to_wire()
    before = server.handle(wire, ACME_ASKER)
    assert isinstance(before, dns.message.Message) and before.rcode() == dns.rcode.NXDOMAIN
    server.update(InternalRecords([machine("n1", "newapp", "ams", 50)]))
    after = server.handle(wire, ACME_ASKER)
    assert isinstance(after, dns.message.Message) and after.rcode() == dns.rcode.NOERROR
    assert len(after.answer[0]) == 1


def test_answers_too_big_for_udp_are_truncated_to_their_question() -> None:
    many = InternalRecords([machine(f"m{n}", "big", "ams", n) for n in range(1, 60)])
    server = InternalDnsServer(many, region="ams")
    response = server.handle(dns.message.make_query("big.internal", "AAAA").to_wire(), ACME_ASKER)
    assert isinstance(response, dns.message.Message)
    small = dns.message.from_wire(to_wire(response, 512))
    assert small.flags & dns.flags.TC and not small.answer and small.question
    assert len(dns.message.from_wire(to_wire(response, 65535)).answer[0]) == 59
