"""Rendered ``.internal`` responses, reused for repeated questions. Pure: no I/O.

Machines ask the same few questions over and over (``db.internal``,
``top1.nearest.of.pg.internal``); building and rendering a response with
dnspython costs far more than the lookup. ``WireCache`` keeps, for one
``InternalRecords`` instance, the rendered response to each question already
answered, and serves the next identical question by splicing the new query's
id and question bytes into it.

Contract: ``lookup`` returns exactly the bytes ``internal_dns.answer(...)
.to_wire()`` would give (same id, the query's own letter case in the
question; answer names are compressed to point at the question, so they follow
it), or ``None`` when the query is not a plain one — then the caller takes the
full path. Plain: a query (QR 0, opcode QUERY), one question, nothing else but
an optional OPT record without options, a name under ``internal.``, an asker
in an organization's network. The key holds the asker's network: one
organization's answers are never served to another. At most ``max_entries``
responses are kept (the cache is emptied when full).
"""

from __future__ import annotations

import ipaddress
import struct

import dns.message
import dns.rcode

from ferry.errors import ValidationError
from ferry.net import sixpn
from ferry.net.internal_dns import answer
from ferry.net.internal_records import InternalRecords

__all__ = ["WireCache"]

_ZONE_SUFFIX = b"\x08internal\x00"
_CACHEABLE = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)


class WireCache:
    """Responses for one ``InternalRecords``; make a new one when the records change."""

    def __init__(
        self, records: InternalRecords, region: str | None, *, max_entries: int = 10_000
    ) -> None:
        self.records = records
        self.region = region
        self.max_entries = max_entries
        self._responses: dict[tuple[object, ...], bytes] = {}
        self._networks: dict[str, int | None] = {}

    def lookup(self, wire: bytes, asker: str) -> tuple[bytes, int] | None:
        """The response to ``wire`` and the asker's EDNS payload size (0 without
        EDNS), or ``None`` when the query must take the full path. Never raises."""
        plain = _plain_question(wire)
        if plain is None:
            return None
        end, qname, qtype, qclass, payload = plain
        network = self._network(asker)
        if network is None:
            return None
        key = (network, qname, qtype, qclass, wire[2] & 0x01, payload != 0)
        rendered = self._responses.get(key)
        if rendered is None:
            rendered = self._render(wire, asker)
            if rendered is None:
                return None
            if len(self._responses) >= self.max_entries:
                self._responses.clear()
            self._responses[key] = rendered
        return wire[:2] + rendered[2:12] + wire[12:end] + rendered[end:], payload

    def _render(self, wire: bytes, asker: str) -> bytes | None:
        result = answer(wire, asker, self.records, self.region)
        if not isinstance(result, dns.message.Message) or result.rcode() not in _CACHEABLE:
            return None
        try:
            return result.to_wire(want_shuffle=False)
        except Exception:  # too big for any message: the full path says so
            return None

    def _network(self, asker: str) -> int | None:
        if asker not in self._networks:
            if len(self._networks) >= self.max_entries:
                self._networks.clear()
            try:
                network: int | None = sixpn.parse(ipaddress.IPv6Address(asker)).network
            except (ValueError, ValidationError):
                network = None
            self._networks[asker] = None if network == sixpn.INFRA_NETWORK else network
        return self._networks[asker]


def _plain_question(wire: bytes) -> tuple[int, bytes, int, int, int] | None:
    """(end of the question, its lower-case name, type, class, EDNS payload or 0)
    when ``wire`` is a plain query for a name under ``internal.``; else None."""
    if len(wire) < 12 + len(_ZONE_SUFFIX) + 4 or wire[2] & 0xF8:  # QR or an opcode
        return None
    questions, answers, authority, additional = struct.unpack_from("!4H", wire, 4)
    if questions != 1 or answers or authority or additional > 1:
        return None
    position = 12
    while True:
        if position >= len(wire) or position - 12 > 255:
            return None
        length = wire[position]
        if length == 0:
            position += 1
            break
        if length & 0xC0:  # compression or an extended label: not plain
            return None
        position += 1 + length
    qname = wire[12:position].lower()
    if not qname.endswith(_ZONE_SUFFIX) or position + 4 > len(wire):
        return None
    qtype, qclass = struct.unpack_from("!2H", wire, position)
    end = position + 4
    rest = wire[end:]
    if not additional:
        return (end, qname, qtype, qclass, 0) if not rest else None
    # An OPT record without options: root name, type 41, payload, TTL, RDLENGTH 0.
    if len(rest) != 11 or rest[0] != 0 or rest[1:3] != b"\x00\x29" or rest[9:11] != b"\x00\x00":
        return None
    payload = struct.unpack_from("!H", rest, 3)[0]
    return end, qname, qtype, qclass, max(payload, 1)
