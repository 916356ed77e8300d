"""``.internal`` answers: every name form, only the asker's organization, NODATA vs
NXDOMAIN, malformed queries, forwarding and refusals."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from ferry.net import sixpn
from ferry.net.internal_dns import TTL, Forward, answer
from ferry.net.internal_records import InternalRecords

from .internal_fixtures import ACME, ACME_ASKER, OTHER, OTHER_ASKER, address, machine, records


def ask(
    name: str, rdtype: str = "AAAA", asker: str = ACME_ASKER, region: str | None = "ams"
) -> dns.message.Message:
    result = answer(dns.message.make_query(name, rdtype).to_wire(), asker, records(), region)
    assert isinstance(result, dns.message.Message)
    return result


def aaaa(name: str, **kwargs: str) -> list[str]:
    response = ask(name, "AAAA", **kwargs)
    assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())
    return [rd.address for rrset in response.answer for rd in rrset]


def txt(name: str, **kwargs: str) -> str:
    response = ask(name, "TXT", **kwargs)
    assert response.rcode() == dns.rcode.NOERROR
    (rrset,) = response.answer
    (rdata,) = rrset
    return b"".join(rdata.strings).decode()


def acme(*numbers: int) -> list[str]:
    return [str(address(ACME, n)) for n in numbers]


def test_app_and_global_names_give_every_started_machine() -> None:
    assert sorted(aaaa("web.internal")) == acme(1, 2, 3)  # web4ams is stopped
    assert sorted(aaaa("global.web.internal")) == acme(1, 2, 3)
    assert aaaa("db.internal") == acme(5)


def test_region_name_gives_that_regions_started_machines() -> None:
    assert aaaa("ams.web.internal") == acme(1)
    assert aaaa("sin.web.internal") == acme(2)


def test_top_n_nearest_ranks_by_the_latency_matrix_from_the_askers_region() -> None:
    assert aaaa("top1.nearest.of.web.internal") == acme(1)  # ams itself
    assert aaaa("top2.nearest.of.web.internal") == acme(1, 3)  # then fra, 11 ms
    assert aaaa("top9.nearest.of.web.internal") == acme(1, 3, 2)
    assert aaaa("top1.nearest.of.web.internal", region="sin") == acme(2)


def test_vm_process_and_metadata_names() -> None:
    assert aaaa("web2sin.vm.web.internal") == acme(2)
    assert aaaa("worker.process.web.internal") == acme(3)
    assert sorted(aaaa("app.process.web.internal")) == acme(1, 2)
    assert aaaa("primary.role.kv._metadata.web.internal") == acme(1)
    assert aaaa("replica.role.kv._metadata.db.internal") == acme(5)  # case-insensitive


def test_txt_lists_follow_flys_formats() -> None:
    assert txt("vms.web.internal") == "web1ams ams,web2sin sin,web3fra fra"
    assert txt("all.vms.web.internal") == "web1ams ams,web2sin sin,web3fra fra,web4ams ams"
    assert txt("regions.web.internal") == "ams,fra,sin"
    assert txt("_apps.internal") == "db,empty,web"
    assert txt("_peer.internal") == "laptop"
    assert txt("_instances.internal").startswith(f"instance=db1iad,app=db,ip={address(ACME, 5)}")


def test_peer_names_resolve_to_the_peers_address() -> None:
    assert aaaa("laptop._peer.internal") == [str(sixpn.machine_address(ACME, 0xFFFF, 1))]


def test_names_are_case_insensitive_and_answers_short_lived() -> None:
    response = ask("WEB1AMS.VM.Web.INTERNAL")
    assert [rd.address for rd in response.answer[0]] == acme(1)
    assert response.answer[0].ttl == TTL == 5
    assert response.flags & dns.flags.AA


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("web.internal", "A"),  # an existing name asked for IPv4
        ("web.internal", "TXT"),
        ("vms.web.internal", "AAAA"),
        ("web4ams.vm.web.internal", "AAAA"),  # exists, but stopped
        ("iad.web.internal", "AAAA"),  # a known region without machines of the app
        ("empty.internal", "AAAA"),  # an app without machines
        ("internal", "A"),
    ],
)
def test_existing_names_without_such_records_are_nodata(name: str, rdtype: str) -> None:
    response = ask(name, rdtype)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert response.authority[0].rdtype == dns.rdatatype.SOA  # cacheable negative answer


@pytest.mark.parametrize(
    "name",
    [
        "nope.internal",
        "nope.vm.web.internal",
        "nope.process.web.internal",
        "xx.web.internal",
        "top0.nearest.of.web.internal",
        "topx.nearest.of.web.internal",
        "nope._peer.internal",
        "other.role.kv._metadata.web.internal",
    ],
)
def test_names_that_do_not_exist_are_nxdomain(name: str) -> None:
    assert ask(name).rcode() == dns.rcode.NXDOMAIN


def test_another_organizations_names_look_exactly_like_names_that_do_not_exist() -> None:
    def stripped(response: dns.message.Message) -> str:
        response.id = 0
        return response.to_text().replace("missing", "X").replace("secret", "X")

    for name in ("secret.internal", "sec1ams.vm.secret.internal", "vms.secret.internal"):
        theirs = ask(name, "TXT" if name.startswith("vms") else "AAAA")
        missing = ask(
            name.replace("secret", "missing"), "TXT" if name.startswith("vms") else "AAAA"
        )
        assert theirs.rcode() == dns.rcode.NXDOMAIN
        assert stripped(theirs) == stripped(missing)
    assert ask("spy._peer.internal").rcode() == dns.rcode.NXDOMAIN
    assert "secret" not in txt("_apps.internal") and "hidden" not in txt("_apps.internal")
    assert "spy" not in txt("_peer.internal")
    # ... while the other organization sees its own, and not ours.
    assert txt("_apps.internal", asker=OTHER_ASKER) == "hidden,secret"
    assert ask("web.internal", asker=OTHER_ASKER).rcode() == dns.rcode.NXDOMAIN
    assert aaaa("secret.internal", asker=OTHER_ASKER) == [str(address(OTHER, 1))]


@pytest.mark.parametrize("asker", ["127.0.0.1", "::1", "10.0.0.7", "fdaa::3", "fdaa::4:0:0:1", "x"])
def test_askers_outside_an_organizations_network_are_refused(asker: str) -> None:
    assert ask("web.internal", asker=asker).rcode() == dns.rcode.REFUSED
    assert ask("example.com", asker=asker).rcode() == dns.rcode.REFUSED


def test_names_outside_internal_are_forwarded() -> None:
    query = dns.message.make_query("Example.COM", "A")
    result = answer(query, ACME_ASKER, records(), "ams")
    assert isinstance(result, Forward) and result.query is query


def test_malformed_queries_get_formerr_or_are_dropped() -> None:
    query = dns.message.make_query("web.internal", "AAAA")
    query.id = 0x1234
    wire = query.to_wire()
    formerr = answer(wire[:-3], ACME_ASKER, records(), "ams")
    assert isinstance(formerr, dns.message.Message)
    assert formerr.rcode() == dns.rcode.FORMERR and formerr.id == 0x1234
    assert answer(b"\x00\x01", ACME_ASKER, records(), "ams") is None  # no header
    response = dns.message.make_response(query).to_wire()
    assert answer(response, ACME_ASKER, records(), "ams") is None  # never answer answers
    junk = answer(wire + b"junk", ACME_ASKER, records(), "ams")
    assert isinstance(junk, dns.message.Message) and junk.rcode() == dns.rcode.FORMERR
    two = dns.message.make_query("web.internal", "AAAA")
    two.question.append(dns.message.make_query("db.internal", "AAAA").question[0])
    result = answer(two, ACME_ASKER, records(), "ams")
    assert isinstance(result, dns.message.Message) and result.rcode() == dns.rcode.FORMERR
    notify = dns.message.make_query("web.internal", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    result = answer(notify, ACME_ASKER, records(), "ams")
    assert isinstance(result, dns.message.Message) and result.rcode() == dns.rcode.NOTIMP


def test_long_txt_lists_are_split_into_character_strings() -> None:
    many = InternalRecords([machine(f"m{n:04d}", "big", "ams", n) for n in range(1, 200)])
    result = answer(dns.message.make_query("vms.big.internal", "TXT"), ACME_ASKER, many, "ams")
    assert isinstance(result, dns.message.Message)
    (rdata,) = result.answer[0]
    assert all(len(s) <= 255 for s in rdata.strings) and len(rdata.strings) > 1
    assert b"".join(rdata.strings).decode().split(",")[-1] == "m0199 ams"


def test_any_query_returns_what_the_name_has() -> None:
    response = ask("web.internal", "ANY")
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.AAAA]


def test_binary_labels_are_just_names_that_do_not_exist() -> None:
    name = dns.name.Name([b"\xff" * 63, b"\xc3\xa9", b"web", b"internal", b""])
    result = answer(dns.message.make_query(name, "AAAA"), ACME_ASKER, records(), "ams")
    assert isinstance(result, dns.message.Message)
    assert result.rcode() == dns.rcode.NXDOMAIN
    assert dns.message.from_wire(result.to_wire()).question[0].name == name
