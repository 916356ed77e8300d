"""The rendered-response cache gives byte for byte what the full path gives."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from ferry.net.dns_wire_cache import WireCache
from ferry.net.internal_dns import answer
from ferry.net.internal_records import InternalRecords

from .internal_fixtures import ACME_ASKER, OTHER_ASKER, records

NAMES = [
    ("web.internal", "AAAA"),
    ("top2.nearest.of.web.internal", "AAAA"),
    ("vms.web.internal", "TXT"),
    ("_apps.internal", "TXT"),
    ("web.internal", "A"),
    ("nope.internal", "AAAA"),
    ("secret.internal", "AAAA"),
]


def full_path(query: dns.message.Message, asker: str) -> bytes:
    result = answer(query.to_wire(), asker, records(), "ams")
    assert isinstance(result, dns.message.Message)
    return result.to_wire(want_shuffle=False)


@pytest.mark.parametrize(("name", "rdtype"), NAMES)
def test_repeated_questions_get_the_full_paths_bytes(name: str, rdtype: str) -> None:
    cache = WireCache(records(), "ams")
    for asker in (ACME_ASKER, OTHER_ASKER, ACME_ASKER, OTHER_ASKER):
        for variant in range(4):
            spelled = name.upper() if variant % 2 else name
            query = dns.message.make_query(spelled, rdtype, use_edns=0 if variant > 1 else None)
            query.id = 1000 + variant
            if variant == 3:
                query.flags &= ~dns.flags.RD
            found = cache.lookup(query.to_wire(), asker)
            assert found is not None
            assert found[0] == full_path(query, asker)
            assert found[1] == (1232 if variant > 1 else 0)


def test_other_queries_take_the_full_path() -> None:
    cache = WireCache(records(), "ams")
    outside = dns.message.make_query("example.com", "A").to_wire()
    assert cache.lookup(outside, ACME_ASKER) is None  # forwarded by the full path
    assert cache.lookup(dns.message.make_query("web.internal", "AAAA").to_wire(), "::1") is None
    with_option = dns.message.make_query("web.internal", "AAAA", use_edns=0)
    with_option.use_edns(0, options=[dns.edns.GenericOption(65001, b"x")])
    assert cache.lookup(with_option.to_wire(), ACME_ASKER) is None
    plain = dns.message.make_query("web.internal", "AAAA").to_wire()
    for broken in (plain[:-2], plain + b"\x00", plain[:2] + b"\x81" + plain[3:], b"\x00" * 12):
        assert cache.lookup(broken, ACME_ASKER) is None


def test_a_new_cache_follows_new_records() -> None:
    query = dns.message.make_query("web.internal", "AAAA").to_wire()
    old = WireCache(records(), "ams").lookup(query, ACME_ASKER)
    empty = WireCache(InternalRecords(), "ams").lookup(query, ACME_ASKER)
    assert old is not None and empty is not None
    assert dns.message.from_wire(empty[0]).rcode() == dns.rcode.NXDOMAIN
    assert dns.message.from_wire(old[0]).rcode() == dns.rcode.NOERROR
