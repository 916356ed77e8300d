"""A tiny upstream resolver for tests: answers A queries from a fixed table."""

from __future__ import annotations

import asyncio
from typing import Any

import dns.message
import dns.rcode
import dns.rrset


class TinyUpstream(asyncio.DatagramProtocol):
    """Answers ``name → IPv4`` from ``table`` (NXDOMAIN otherwise); counts queries.
    With ``silent`` it never answers (an upstream that is down)."""

    def __init__(self, table: dict[str, str], *, silent: bool = False) -> None:
        self.table = table
        self.silent = silent
        self.queries: list[str] = []
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        query = dns.message.from_wire(data)
        name = query.question[0].name.to_text(omit_final_dot=True).lower()
        self.queries.append(name)
        if self.silent:
            return
        response = dns.message.make_response(query)
        if name in self.table:
            response.answer.append(
                dns.rrset.from_text(query.question[0].name, 60, "IN", "A", self.table[name])
            )
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(response.to_wire(), addr)


async def start_upstream(
    host: str, table: dict[str, str], *, silent: bool = False
) -> tuple[TinyUpstream, tuple[str, int]]:
    """Listen on ``host`` (a free port); the protocol and its address. Close with
    ``upstream.transport.close()``."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TinyUpstream(table, silent=silent), local_addr=(host, 0)
    )
    address = transport.get_extra_info("sockname")
    return protocol, (str(address[0]), int(address[1]))
