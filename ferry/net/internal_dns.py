"""``.internal`` DNS answers, computed from ``InternalRecords``. Pure: no I/O.

``answer(query, asker, records, region)`` is the whole contract: it returns the
response message, ``Forward(query)`` for a name outside ``.internal`` (the
server sends it to the upstream resolver), or ``None`` for bytes that are not
a DNS query at all (too short to carry an id, or a response: dropped so a
spoofed packet cannot start a loop).

Who asks decides what exists: the asker's organization is the 6PN network of
its source address (``sixpn.parse``). Only that organization's apps, machines
and peers are names; another organization's app gets exactly the NXDOMAIN a
name that never existed gets. Askers outside 6PN, or in the platform's network
0, are REFUSED (the resolver is not open, and has no organization to answer
for).

Names (case-insensitive; ``<app>`` is an app of the asker's organization)::

    <app>.internal, global.<app>.internal           AAAA  started machines
    <region>.<app>.internal                          AAAA  started, in region
    top<N>.nearest.of.<app>.internal                 AAAA  N nearest started
    <id>.vm.<app>.internal                           AAAA  that machine, if started
    <group>.process.<app>.internal                   AAAA  started, in group
    <value>.<key>.kv._metadata.<app>.internal        AAAA  started, metadata[key]==value
    vms.<app>.internal  (all.vms: stopped too)       TXT   "id region,id region"
    regions.<app>.internal  (all.regions)            TXT   "ams,sin"
    _apps.internal                                   TXT   "app1,app2"
    _peer.internal, <peer>._peer.internal            TXT "a,b" / AAAA of the peer
    _instances.internal (all._instances)             TXT   "instance=ID,app=A,ip=IP,region=R;…"
    <app>.flycast                                    AAAA  the app's Flycast addresses

``.flycast`` follows the same rules in its own zone (its own SOA): an app of
the asker's organization with a Flycast address is a name, anything else —
another organization's app, an app without one — is NXDOMAIN.

A name that exists but has no record of the asked type (an A query, a TXT on
an AAAA name, a region with no started machine) is NOERROR with no answer
(NODATA); both NODATA and NXDOMAIN carry the zone's SOA so resolvers cache them
for ``TTL`` seconds. Every answer has TTL ``TTL`` (5 s): records follow starts
and stops. Addresses come in a fixed order, by machine id (``top<N>``: nearest
first); render with ``to_wire(want_shuffle=False)`` to keep it. Answers are
bounded (``MAX_ADDRESSES``) so the work per query is.
"""

from __future__ import annotations

import ipaddress
import math
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from ferry.errors import ValidationError
from ferry.net import sixpn
from ferry.net.internal_records import InternalRecords, MachineRecord

__all__ = ["FLYCAST_ZONE", "MAX_ADDRESSES", "TTL", "ZONE", "Forward", "answer", "parse_query"]

TTL = 5
"""Seconds every ``.internal`` answer (and negative answer) may be cached."""

ZONE = dns.name.from_text("internal.")
FLYCAST_ZONE = dns.name.from_text("flycast.")
MAX_ADDRESSES = 1000
"""At most this many AAAA records in one answer (fits a 64 KiB TCP message)."""
MAX_NEAREST = 1000

_SOA = dns.rrset.from_text(ZONE, TTL, "IN", "SOA", "ns.internal. hostmaster.internal. 1 60 60 60 5")
_FLYCAST_SOA = dns.rrset.from_text(
    FLYCAST_ZONE, TTL, "IN", "SOA", "ns.internal. hostmaster.internal. 1 60 60 60 5"
)
_TXT_CHUNK = 255  # a TXT character-string holds at most 255 bytes
MAX_CACHED = 10_000
"""Answers memoized per ``InternalRecords`` instance (building records is the cost)."""

_Sections = tuple[dns.rcode.Rcode, tuple[dns.rrset.RRset, ...], tuple[dns.rrset.RRset, ...]]
# Keyed by the records object: a new one (``update``) starts empty, the old one's
# cache goes with it. Only the asker's network is in the key, so nothing crosses orgs.
_answers: weakref.WeakKeyDictionary[InternalRecords, dict[object, _Sections]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class Forward:
    """Not ours: send ``query`` to the upstream resolver and relay its answer."""

    query: dns.message.Message


@dataclass(frozen=True)
class _Node:
    """A name that exists: its addresses (AAAA) and/or its TXT text."""

    addresses: tuple[ipaddress.IPv6Address, ...] = ()
    txt: str | None = None


def parse_query(wire: bytes) -> dns.message.Message | None:
    """The query in ``wire``; a FORMERR response when only its header is readable;
    ``None`` when it is too short or is itself a response (drop those)."""
    if len(wire) < 12 or wire[2] & 0x80:
        return None
    try:
        return dns.message.from_wire(wire)
    except Exception:  # any garbage: dnspython raises many kinds
        formerr = dns.message.Message(id=int.from_bytes(wire[:2], "big"))
        formerr.flags = dns.flags.QR | (dns.flags.RD & int.from_bytes(wire[2:4], "big"))
        formerr.set_rcode(dns.rcode.FORMERR)
        return formerr


def answer(
    query: bytes | dns.message.Message,
    asker: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
    records: InternalRecords,
    region: str | None = None,
) -> dns.message.Message | Forward | None:
    """Answer one query from ``asker`` (its source address) out of ``records``.

    ``region`` is where the asker is, for ``top<N>.nearest.of``: the host's
    region (a machine asks its own host). Never raises on bad input: malformed
    queries get FORMERR, other opcodes NOTIMP, see the module docstring.
    """
    if isinstance(query, bytes):
        parsed = parse_query(query)
        if parsed is None or parsed.flags & dns.flags.QR:
            return parsed
        query = parsed
    elif query.flags & dns.flags.QR:
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    network = _network_of(asker)
    if network is None:
        response.set_rcode(dns.rcode.REFUSED)
        return response
    question = query.question[0]
    zone = ZONE if question.name.is_subdomain(ZONE) else FLYCAST_ZONE
    if not question.name.is_subdomain(zone):
        return Forward(query)
    if question.rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY):
        response.set_rcode(dns.rcode.REFUSED)
        return response
    response.flags |= dns.flags.AA
    labels = tuple(
        label.decode("latin-1").lower() for label in question.name.relativize(zone).labels
    )
    key = (zone, network, labels, question.rdtype, region)
    cache = _answers.setdefault(records, {})
    sections = cache.get(key)
    if sections is None:
        name = question.name.canonicalize()  # lower case, as every answer's owner
        if zone == FLYCAST_ZONE:
            sections = _flycast_sections(name, labels, question.rdtype, network, records)
        else:
            sections = _sections(name, labels, question.rdtype, network, records, region)
        if len(cache) >= MAX_CACHED:
            cache.clear()  # bounded memory; refilled by the next queries
        cache[key] = sections
    rcode, response.answer, response.authority = sections[0], list(sections[1]), list(sections[2])
    response.set_rcode(rcode)
    return response


def _sections(
    name: dns.name.Name,
    labels: tuple[str, ...],
    rdtype: dns.rdatatype.RdataType,
    network: int,
    records: InternalRecords,
    region: str | None,
) -> _Sections:
    """Rcode, answer and authority for ``labels`` (under ``internal.``, lower case)."""
    node = _resolve(list(labels), network, records, region)
    if node is None:
        return (dns.rcode.NXDOMAIN, (), (_SOA,))
    wants = (lambda t: True) if rdtype == dns.rdatatype.ANY else (lambda t: t == rdtype)
    answer: list[dns.rrset.RRset] = []
    if wants(dns.rdatatype.AAAA) and node.addresses:
        answer.append(_aaaa(name, node.addresses))
    if wants(dns.rdatatype.TXT) and node.txt is not None:
        answer.append(_txt(name, node.txt))
    if wants(dns.rdatatype.SOA) and not labels:
        answer.append(_SOA)
    return (dns.rcode.NOERROR, tuple(answer), () if answer else (_SOA,))


def _flycast_sections(
    name: dns.name.Name,
    labels: tuple[str, ...],
    rdtype: dns.rdatatype.RdataType,
    network: int,
    records: InternalRecords,
) -> _Sections:
    """``<app>.flycast``: the asker's organization's app's Flycast addresses."""
    wants = (lambda t: True) if rdtype == dns.rdatatype.ANY else (lambda t: t == rdtype)
    if not labels:
        answer = (_FLYCAST_SOA,) if wants(dns.rdatatype.SOA) else ()
        return (dns.rcode.NOERROR, answer, () if answer else (_FLYCAST_SOA,))
    found = records.flycast_of(network, labels[0]) if len(labels) == 1 else ()
    if not found:
        return (dns.rcode.NXDOMAIN, (), (_FLYCAST_SOA,))
    if wants(dns.rdatatype.AAAA):
        return (dns.rcode.NOERROR, (_aaaa(name, found[:MAX_ADDRESSES]),), ())
    return (dns.rcode.NOERROR, (), (_FLYCAST_SOA,))


def _network_of(asker: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> int | None:
    """The 6PN network of the asker, or None when it is not an organization's address."""
    try:
        ip = ipaddress.ip_address(asker) if isinstance(asker, str) else asker
        if not isinstance(ip, ipaddress.IPv6Address):
            return None
        network = sixpn.parse(ipaddress.IPv6Address(int(ip))).network  # without a %scope
    except (ValueError, ValidationError):
        return None
    return None if network == sixpn.INFRA_NETWORK else network


def _resolve(
    labels: list[str], network: int, records: InternalRecords, region: str | None
) -> _Node | None:
    """The node ``labels`` (under ``internal.``, lower case) names for ``network``."""
    if not labels:
        return _Node()
    org_wide = _org_wide(labels, network, records)
    if org_wide is not None or labels[-1] in ("_apps", "_peer", "_instances"):
        return org_wide
    app = labels[-1]
    if not records.has_app(network, app):
        return None
    machines = records.machines_of(network, app)
    started = [m for m in machines if m.started]
    rest = labels[:-1]
    if rest in ([], ["global"]):
        return _addresses(started)
    if rest in (["vms"], ["all", "vms"]):
        listed = machines if rest[0] == "all" else started
        return _Node(txt=",".join(f"{m.id} {m.region}" for m in listed))
    if rest in (["regions"], ["all", "regions"]):
        listed = machines if rest[0] == "all" else started
        return _Node(txt=",".join(sorted({m.region for m in listed})))
    if len(rest) == 1 and rest[0] in records.regions:
        return _addresses(m for m in started if m.region == rest[0])
    if len(rest) == 3 and rest[1:] == ["nearest", "of"]:
        return _nearest(rest[0], started, records, region)
    if len(rest) == 2 and rest[1] == "vm":
        return _exists(machines, lambda m: m.id.lower() == rest[0])
    if len(rest) == 2 and rest[1] == "process":
        return _exists(machines, lambda m: m.process_group.lower() == rest[0])
    if len(rest) == 4 and rest[2:] == ["kv", "_metadata"]:
        value, key = rest[0], rest[1]
        return _exists(
            machines,
            lambda m: any(k.lower() == key and v.lower() == value for k, v in m.metadata.items()),
        )
    return None


def _org_wide(labels: list[str], network: int, records: InternalRecords) -> _Node | None:
    """``_apps``, ``_peer``, ``<peer>._peer``, ``[all.]_instances``; None otherwise."""
    if labels == ["_apps"]:
        return _Node(txt=",".join(records.apps.get(network, ())))
    if labels == ["_peer"]:
        return _Node(txt=",".join(records.peers.get(network, {})))
    if len(labels) == 2 and labels[1] == "_peer":
        address = records.peer(network, labels[0])
        return None if address is None else _Node(addresses=(address,))
    if labels in (["_instances"], ["all", "_instances"]):
        machines = [
            m
            for app in records.apps.get(network, ())
            for m in records.machines_of(network, app)
            if m.started or labels[0] == "all"
        ]
        return _Node(
            txt=";".join(
                f"instance={m.id},app={m.app},ip={m.address},region={m.region}" for m in machines
            )
        )
    return None


def _addresses(machines: Iterable[MachineRecord]) -> _Node:
    found: list[ipaddress.IPv6Address] = []
    for machine in machines:
        if len(found) == MAX_ADDRESSES:
            break
        found.append(machine.address)
    return _Node(addresses=tuple(found))


def _exists(
    machines: Iterable[MachineRecord], match: Callable[[MachineRecord], bool]
) -> _Node | None:
    """The started matches' addresses; NODATA when only stopped ones match; else None."""
    matching = [m for m in machines if match(m)]
    if not matching:
        return None
    return _addresses(m for m in matching if m.started)


def _nearest(
    label: str, started: list[MachineRecord], records: InternalRecords, region: str | None
) -> _Node | None:
    """``top<N>``: the N started machines nearest ``region`` (ties: region, then id)."""
    digits = label.removeprefix("top")
    if not label.startswith("top") or not digits.isdigit() or not 0 < int(digits) <= MAX_NEAREST:
        return None

    def distance(machine: MachineRecord) -> tuple[float, str, str]:
        rtt = math.inf if region is None else records.distances.rtt_ms(region, machine.region)
        return (rtt, machine.region, machine.id)

    return _addresses(sorted(started, key=distance)[: int(digits)])


def _aaaa(name: dns.name.Name, addresses: tuple[ipaddress.IPv6Address, ...]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(
        name, TTL, dns.rdataclass.IN, dns.rdatatype.AAAA, [str(a) for a in addresses]
    )


def _txt(name: dns.name.Name, text: str) -> dns.rrset.RRset:
    """One TXT record; text longer than 255 bytes is split into character-strings
    (clients join them back, as for Fly's long ``vms`` lists)."""
    data = text.encode()
    chunks = [data[i : i + _TXT_CHUNK] for i in range(0, len(data), _TXT_CHUNK)] or [b""]
    rrset = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.TXT)
    rrset.add(dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks), TTL)
    return rrset
