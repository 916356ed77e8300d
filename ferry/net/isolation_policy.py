"""The fixed part of the isolation ruleset: its chains, each rule with the reason it exists.

The chains never change with the host: only the sets they look up do
(``ferry.net.isolation`` writes those from the host's snapshot). So the
number of rules a packet meets does not grow with machines or organizations,
and reading this module is reading the whole policy. Chain by chain:

``inet`` prerouting: a machine's packets carry its own addresses (else drop,
before conntrack); input: machines reach only the host's services and ND,
the mesh only from network 0; forward: machines reach their organization's
6PN, never another's, another machine's IPv4 or a protected range, the mesh
is admitted only into its source's organization, and only the edge opens
connections to machines. ``bridge``: the same source check per port (and for
ARP), no port but its owner's uses a machine's address, and no frame goes
between two machines' ports but one organization's 6PN.
"""

from __future__ import annotations

from ferry.net.sixpn import SIXPN

__all__ = ["BRIDGE_CHAINS", "INET_CHAINS", "ND_TYPES"]

ND_TYPES = (
    "nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, "
    "mld-listener-report, mld2-listener-report"
)
"""Neighbour discovery and multicast listener reports: what IPv6 needs on a link."""


def _q(text: str) -> str:
    return f'"{text}"'


def _chain(name: str, hook: str, rules: list[tuple[str, str]]) -> str:
    lines = [f"  chain {name} {{"] + ([f"    {hook}"] if hook else [])
    lines += [f"    {rule} comment {_q(why)}" for rule, why in rules]
    return "\n".join(lines) + "\n  }"


def _source_checks() -> list[tuple[str, str]]:
    """Anti-spoofing: a machine's packets carry its own addresses, link-local only for ND."""
    return [
        (
            "icmpv6 type nd-neighbor-advert @th,64,16 != 0xfe80"
            " iifname . @th,64,128 != @nd_targets drop",
            "announcing another machine's address would poison the host's neighbour cache",
        ),
        ("iifname . ip saddr @machine_v4 accept", "the machine's own IPv4 address"),
        ("iifname . ip6 saddr @machine_v6 accept", "the machine's own 6PN address"),
        (
            f"ip6 saddr {{ fe80::/10, :: }} icmpv6 type {{ {ND_TYPES} }} accept",
            "link-local and unspecified sources only for neighbour discovery",
        ),
        ("drop", "spoofed source: any other address from a machine"),
    ]


def _impersonation_checks(*, arp: bool) -> list[tuple[str, str]]:
    """From any interface or port: nobody but its owner uses a machine's address."""
    claim = (
        "arp saddr ip @machine_addrs4 iifname . arp saddr ip != @machine_v4 drop",
        "ARP claiming a machine's IPv4 from another port would steal its traffic",
    )
    return [
        *([claim] if arp else []),
        (
            "ip saddr @machine_addrs4 iifname . ip saddr != @machine_v4 drop",
            "a machine's IPv4 from anywhere but its own interface",
        ),
        (
            "ip6 saddr @machine_addrs6 iifname . ip6 saddr != @machine_v6 drop",
            "a machine's 6PN address from anywhere but its own interface",
        ),
        (
            "icmpv6 type nd-neighbor-advert @th,64,128 @nd_owned"
            " iifname . @th,64,128 != @nd_targets drop",
            "announcing a machine's 6PN address from anywhere but its own interface",
        ),
    ]


def _service_accepts() -> list[tuple[str, str]]:
    return [
        ("ip daddr . meta l4proto . th dport @services4 accept", "a service every machine may use"),
        (
            "ip6 daddr . meta l4proto . th dport @services6 accept",
            "DNS at fdaa::3 and other services",
        ),
    ]


INET_CHAINS = "\n".join(
    [
        _chain(
            "prerouting",
            "type filter hook prerouting priority raw; policy accept;",
            [
                *_impersonation_checks(arp=False),
                (
                    "iifname != @machine_ifaces accept",
                    "only packets from machines are checked here",
                ),
                *_source_checks(),
            ],
        ),
        _chain(
            "input",
            "type filter hook input priority filter; policy accept;",
            [
                ("ct state established,related accept", "replies to what the host opened"),
                ("iifname @machine_ifaces jump machine_to_host", "a machine asks the host"),
                ("iifname @mesh_ifaces jump mesh_to_host", "something on the mesh asks the host"),
            ],
        ),
        _chain(
            "machine_to_host",
            "",
            [
                (f"icmpv6 type {{ {ND_TYPES} }} accept", "IPv6 needs neighbour discovery"),
                *_service_accepts(),
                (
                    "drop",
                    "the host's own addresses (agent, control plane, registry): not for machines",
                ),
            ],
        ),
        _chain(
            "mesh_to_host",
            "",
            [
                (f"icmpv6 type {{ {ND_TYPES} }} accept", "a mesh link that is Ethernet needs ND"),
                *_service_accepts(),
                ("ip6 saddr @edge6 accept", "the platform's hosts and edges (network 0)"),
                ("drop", "machines on other hosts do not reach this host's own addresses"),
            ],
        ),
        _chain(
            "forward",
            "type filter hook forward priority filter; policy accept;",
            [
                ("ct state established,related accept", "replies of connections already allowed"),
                ("iifname @machine_ifaces jump from_machine", "a machine opens a connection"),
                ("iifname @mesh_ifaces jump from_mesh", "a packet from another host"),
                ("oifname @machine_ifaces jump to_machine", "anything else towards a machine"),
            ],
        ),
        _chain(
            "from_machine",
            "",
            [
                *_service_accepts(),
                (
                    "ip6 saddr . ip6 daddr @same_org accept",
                    "its own organization, any port, any host",
                ),
                (f"ip6 daddr {SIXPN} drop", "another organization's 6PN (or network 0)"),
                (
                    "ip daddr @machine_addrs4 drop",
                    "other machines' IPv4: machines meet on 6PN only",
                ),
                (
                    "ip daddr @protected4 drop",
                    "control plane, registry, agents, hosts, cluster range",
                ),
                ("ip6 daddr @protected6 drop", "control plane, registry, agents, hosts"),
                ("accept", "anything else, beyond the cluster, as before"),
            ],
        ),
        _chain(
            "from_mesh",
            "",
            [
                (
                    "ip6 saddr . ip6 daddr @same_org accept",
                    "the source's organization is the destination's",
                ),
                (
                    "ip6 saddr @edge6 oifname @machine_ifaces accept",
                    "the platform opens connections to machines",
                ),
                ("drop", "another organization's (or a forged) source, or no machine of it here"),
            ],
        ),
        _chain(
            "to_machine",
            "",
            [
                ("ip saddr @edge4 accept", "the edge forwards requests to machines"),
                ("ip6 saddr @edge6 accept", "the platform (network 0) reaches machines"),
                ("drop", "nobody else opens connections to machines"),
            ],
        ),
    ]
)
"""The chains of ``table inet ferry``."""

BRIDGE_CHAINS = "\n".join(
    [
        _chain(
            "prerouting",
            "type filter hook prerouting priority filter; policy accept;",
            [
                *_impersonation_checks(arp=True),
                (
                    "iifname != @ports accept",
                    "no machine's port (another bridge, rules not loaded yet): inet checks it",
                ),
                ("arp saddr ip 0.0.0.0 accept", "address probes carry no sender address"),
                ("iifname . arp saddr ip @machine_v4 accept", "ARP for the machine's own IPv4"),
                ("ether type arp drop", "ARP claiming another address would steal its traffic"),
                *_source_checks(),
            ],
        ),
        _chain(
            "forward",
            "type filter hook forward priority filter; policy accept;",
            [
                ("oifname != @ports accept", "not to a machine's port"),
                (f"icmpv6 type {{ {ND_TYPES} }} accept", "neighbour discovery floods the bridge"),
                ("ip6 saddr . ip6 daddr @same_org accept", "6PN within one organization"),
                ("drop", "machines never meet at layer 2 otherwise (other orgs, IPv4)"),
            ],
        ),
    ]
)
"""The chains of ``table bridge ferry`` (only on a host whose machines share a bridge)."""
