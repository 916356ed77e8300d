"""Isolation with real nftables: the reachability matrix, asserted from inside machines.

A lab host (``isolation_lab``) with machines a1, a2 (org A) and b1 (org B),
an edge on its uplink and a remote host behind a stand-in mesh link, in both
layouts a host may have (veths on a bridge, as today, or routed veths). Each
"no" is a drop, not a refusal: the probe goes unanswered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from ferry.errors import NetworkError
from ferry.net import sixpn
from ferry.net.iproute import ip
from ferry.net.nftables import apply_isolation, apply_ruleset, list_ruleset, remove_ruleset

from .isolation_lab import CONTROL_PORT, PORTS, Lab

DNS = sixpn.DNS_ADDRESS


@pytest.fixture(scope="module", params=["bridged", "routed"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One lab per layout for the module (tests leave its ruleset as they found it)."""
    made = Lab(mode=request.param)
    try:
        made.build(tmp_path_factory.mktemp("isolation"))
        apply_isolation(made.ns("h"), made.isolation())
        yield made
    finally:
        made.teardown()


def test_machines_of_one_org_reach_each_other_on_any_port_and_others_do_not(lab: Lab) -> None:
    a1, a2, b1 = lab.machine("a1"), lab.machine("a2"), lab.machine("b1")
    for port in PORTS:
        assert lab.connect("a1", a2.sixpn, port) == "open:a2"
        assert lab.connect("a2", a1.sixpn, port) == "open:a1"
    assert lab.dropped("a1", b1.sixpn, PORTS[0])
    assert lab.dropped("a1", b1.ipv4, PORTS[0])
    assert lab.dropped("b1", a1.sixpn, PORTS[1])
    assert lab.dropped("b1", a1.ipv4, PORTS[1])
    # host-local IPv4 is no way around it, even within one organization
    assert lab.dropped("a1", a2.ipv4, PORTS[0])


def test_machines_reach_dns_but_not_the_host_or_the_control_plane(lab: Lab) -> None:
    assert lab.udp("a1", DNS, 53, "query") == "reply"
    assert lab.connect("b1", DNS, 53) == "open:host"
    assert lab.dropped("a1", f"10.{lab.octet}.1.1", CONTROL_PORT)  # its gateway
    assert lab.dropped("a1", lab.host_uplink, CONTROL_PORT)
    assert lab.dropped("a1", lab.host_infra, CONTROL_PORT)
    assert lab.dropped("a1", DNS, CONTROL_PORT)  # fdaa::3 only for DNS
    assert lab.dropped("b1", lab.control_plane, CONTROL_PORT)
    assert lab.dropped("b1", lab.edge_address, CONTROL_PORT)
    # beyond the cluster: as before
    assert lab.connect("a1", lab.beyond, PORTS[0]) == "open:beyond"


def test_spoofed_sources_from_a_machine_are_dropped(lab: Lab) -> None:
    a1, a2, b1 = lab.machine("a1"), lab.machine("a2"), lab.machine("b1")
    earlier = len(lab.udp_seen())
    assert lab.udp("a1", DNS, 53, "honest-6pn") == "reply"
    assert lab.udp("a1", lab.beyond, 9999, "honest-ipv4") == "reply"
    lab.udp_send("a1", DNS, 53, "claims-a2", source=a2.sixpn)
    lab.udp_send("a1", DNS, 53, "claims-link-local", source="fe80::99%eth0")
    lab.udp_send("a1", lab.beyond, 9999, "claims-b1", source=b1.ipv4)
    lab.udp_send("a1", lab.beyond, 9999, "claims-gateway", source=f"10.{lab.octet}.1.1")
    # the same path, after the spoofed ones: once its echo is back, they had their chance
    assert lab.udp("a1", DNS, 53, "honest-again") == "reply"
    assert lab.udp("a1", lab.beyond, 9999, "honest-ipv4-again") == "reply"
    seen = lab.udp_seen()[earlier:]
    assert sorted(line.split()[1] for line in seen) == [
        "honest-6pn",
        "honest-again",
        "honest-ipv4",
        "honest-ipv4-again",
    ], seen
    assert f"{a1.sixpn} honest-6pn" in seen
    # a spoofed connection to its own org's machine fails too
    assert lab.dropped("a1", a2.sixpn, PORTS[0], source=sixpn.machine_address(0xA, 1, 9))


def test_edge_and_host_reach_machines(lab: Lab) -> None:
    a1, b1 = lab.machine("a1"), lab.machine("b1")
    assert lab.connect("e", a1.ipv4, PORTS[0]) == "open:a1"
    assert lab.connect("e", b1.ipv4, PORTS[1]) == "open:b1"
    assert lab.connect("h", a1.sixpn, PORTS[0]) == "open:a1"
    assert lab.connect("r", b1.sixpn, PORTS[0], source=lab.remote_infra) == "open:b1"


def test_the_mesh_admits_a_packet_only_into_its_sources_organization(lab: Lab) -> None:
    a1, b1 = lab.machine("a1"), lab.machine("b1")
    assert lab.connect("r", a1.sixpn, PORTS[0], source=lab.remote_a) == "open:a1"
    assert lab.dropped("r", a1.sixpn, PORTS[1], source=lab.remote_b)
    assert lab.dropped("r", b1.sixpn, PORTS[0], source=lab.remote_a)
    assert lab.dropped("r", DNS, CONTROL_PORT, source=lab.remote_a)
    # and the other way: a machine reaches its org on another host, not another org
    assert lab.connect("a1", lab.remote_a, PORTS[0]) == "open:remote"
    assert lab.dropped("a1", lab.remote_b, PORTS[0])


def test_a_bad_ruleset_leaves_the_loaded_one_in_force_and_removal_opens_up(lab: Lab) -> None:
    a2, b1 = lab.machine("a2"), lab.machine("b1")
    before = list_ruleset(lab.ns("h"))
    assert "same_org" in before
    broken = (
        "table inet ferry {}\ndelete table inet ferry\ntable inet ferry { chain x { nonsense } }\n"
    )
    with pytest.raises(NetworkError, match="nonsense"):
        apply_ruleset(lab.ns("h"), broken)
    assert list_ruleset(lab.ns("h")) == before
    assert lab.dropped("a1", b1.sixpn, PORTS[0])
    assert lab.connect("a1", a2.sixpn, PORTS[0]) == "open:a2"
    try:
        remove_ruleset(lab.ns("h"))
        remove_ruleset(lab.ns("h"))  # idempotent
        assert list_ruleset(lab.ns("h")) == ""
        # On a bridge the host's ICMPv6 redirect has told a1 that b1 is on its link;
        # a1's direct neighbour discovery of b1 then failed (dropped), and a1 would
        # remember that for a while: start a1 afresh, as a new connection would be.
        for args in (("neigh", "flush", "dev", "eth0"), ("route", "flush", "cache")):
            ip("-6", *args, netns=lab.ns("a1"))
        assert lab.connect("a1", b1.sixpn, PORTS[0]) == "open:b1"
    finally:
        apply_isolation(lab.ns("h"), lab.isolation())
    assert lab.dropped("a1", b1.sixpn, PORTS[1])


def test_loading_into_a_missing_namespace_says_which_and_why() -> None:
    with pytest.raises(NetworkError, match=r"fi-missing-ns.*Cannot open network namespace"):
        apply_ruleset("fi-missing-ns", "table inet ferry {}\n")


def test_a_machine_missing_from_the_ruleset_cannot_pass_for_another(lab: Lab) -> None:
    """A machine started before the agent reloaded the rules (its veth not named)."""
    a1 = lab.machine("a1")
    full = lab.isolation()
    without_b1 = replace(full, machines=tuple(m for m in full.machines if m.veth != lab.veth("b1")))
    apply_isolation(lab.ns("h"), without_b1)
    try:
        earlier = len(lab.udp_seen())
        lab.udp_send("b1", DNS, 53, "b1-as-a1", source=a1.sixpn)
        lab.udp_send("b1", lab.beyond, 9999, "b1-as-a1-v4", source=a1.ipv4)
        assert lab.udp("a1", DNS, 53, "barrier") == "reply"
        assert lab.udp("a1", lab.beyond, 9999, "barrier4") == "reply"
        assert [line.split()[1] for line in lab.udp_seen()[earlier:]] == ["barrier", "barrier4"]
        # Its own traffic: on a bridge it waits for its rules (the bridge's sources
        # are all named); a routed veth the rules do not name is not a machine's.
        expected = "timeout" if lab.mode == "bridged" else "reply"
        assert lab.udp("b1", DNS, 53, "b1-before-its-rules") == expected
    finally:
        apply_isolation(lab.ns("h"), full)
