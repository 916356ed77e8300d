"""A tiny DNS responder at the edge: ``<app>.<domain>`` resolves to the edge address.

Only for the embedded cluster's emulated anycast: every region's clients use
their own edge as resolver (``/etc/netns/<ns>/resolv.conf``), so the same
name leads each client to its own region's proxy. Everything else is
NXDOMAIN; AAAA queries for our names get an empty answer so clients use A.

With a TLS snapshot (``tls``) it also plays the users' own DNS provider for the
custom host names added to apps (``EdgeTls.apps``) or with a certificate: they resolve
to the edge address, as after a user pointed an A record at Ferry; and it
answers TXT ``_acme-challenge.<name>`` from the snapshot's DNS-01 values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from ferry.tls.bundle import EdgeTls

log = logging.getLogger(__name__)

TTL = 5


def _hosted(name: str, tls: EdgeTls) -> bool:
    """Whether ``name`` is a custom host name of the snapshot (exact, or under a wildcard)."""
    if tls.app_for(name) is not None or name in tls.certificates:
        return True
    _label, _dot, parent = name.partition(".")
    return f"*.{parent}" in tls.certificates


def answer_query(
    wire: bytes, domain: str, edge_address: str, tls: EdgeTls | None = None
) -> bytes | None:
    """The response to one DNS query in wire format, or None for garbage. Pure."""
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if not query.question:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    zone = dns.name.from_text(domain)
    text = question.name.to_text(omit_final_dot=True).lower()
    if tls is not None and text in tls.dns01:
        if question.rdtype in (dns.rdatatype.TXT, dns.rdatatype.ANY):
            values = [f'"{value}"' for value in tls.dns01[text]]
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, 0, dns.rdataclass.IN, dns.rdatatype.TXT, values
                )
            )
    elif tls is not None and _hosted(text, tls):
        if question.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
            response.answer.append(
                dns.rrset.from_text(
                    question.name, TTL, dns.rdataclass.IN, dns.rdatatype.A, edge_address
                )
            )
    elif not question.name.is_subdomain(zone):
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif question.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
        response.answer.append(
            dns.rrset.from_text(
                question.name, TTL, dns.rdataclass.IN, dns.rdatatype.A, edge_address
            )
        )
    return response.to_wire()


class _EdgeDns(asyncio.DatagramProtocol):
    def __init__(self, domain: str, edge_address: str, tls: Callable[[], EdgeTls] | None) -> None:
        self.domain = domain
        self.edge_address = edge_address
        self.tls = tls
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        tls = self.tls() if self.tls is not None else None
        reply = answer_query(data, self.domain, self.edge_address, tls)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def serve_dns(
    domain: str,
    edge_address: str,
    port: int = 53,
    tls: Callable[[], EdgeTls] | None = None,
    bind: str | None = None,
) -> asyncio.DatagramTransport:
    """Answer DNS on ``edge_address:port`` (UDP) until the returned transport is closed.
    ``tls``: the current TLS snapshot (custom host names, DNS-01 TXT values). ``bind``:
    listen there instead, still answering ``edge_address``."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _EdgeDns(domain, edge_address, tls), local_addr=(bind or edge_address, port)
    )
    log.info("edge DNS: *.%s -> %s on %s:%d/udp", domain, edge_address, edge_address, port)
    return transport
