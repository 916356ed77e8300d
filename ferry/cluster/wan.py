"""The embedded cluster's emulated WAN: real delay between region namespaces.

This kernel has no netem, so the delay is added in userspace. In the core
namespace (see ``ferry.net.plan``)::

    region ns ──veth r-<code>──▶ core ──rule: iif r-<code> → table 100──▶ TUN wan0
                                   ▲                                        │
                                   └──── main table ◀── written back late ──┘
                                           by ferry.cluster.wan_forwarder

Packets from a region to the root link subnet (the control plane, the
registry) skip the TUN by a higher-priority rule, so they are never delayed
and keep flowing even while the forwarder restarts. Packets from the root
namespace never enter the TUN either.

Use: ``spec = setup_wan(plan, matrix, run_dir)`` after ``build_topology``,
then run ``spec.argv`` as a supervised child (it already enters core), and
optionally ``wait_forwarder_attached(spec)``. Stop the forwarder (by PID)
before ``teardown_topology``; ``teardown_wan`` undoes ``setup_wan`` alone.
"""

from __future__ import annotations

import ipaddress
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ferry.cluster.wan_schedule import WanConfig
from ferry.errors import NetworkError, UnavailableError
from ferry.net.iproute import ip, ip_batch, link_exists, netns_enter_argv, netns_exists, set_sysctl
from ferry.net.latency import LatencyMatrix
from ferry.net.plan import ClusterPlan

__all__ = [
    "WanSpec",
    "forwarder_attached",
    "setup_wan",
    "teardown_wan",
    "wait_forwarder_attached",
    "wan_config",
]

TUN_NAME = "wan0"  # inside core: every cluster has its own core namespace
ROUTE_TABLE = 100
BYPASS_PRIORITY = 1000  # root link subnet: main table, never the TUN
REGION_PRIORITY = 1100  # everything else from a region: into the TUN
CONFIG_NAME = "wan.json"


@dataclass(frozen=True)
class WanSpec:
    """How to run the delay line of one cluster.

    ``argv`` runs the forwarder inside core (``nsenter --net=…``); give it to
    the supervisor as-is. ``config_path`` is the JSON it reads.
    """

    netns: str
    tun: str
    config_path: Path
    argv: list[str]


def wan_config(plan: ClusterPlan, matrix: LatencyMatrix, *, seed: int | None = None) -> WanConfig:
    """The forwarder's config for ``plan``: each region's aggregate and every pair's delay.

    Pure; raises ``ValidationError`` naming a region pair the matrix lacks.
    """
    aggregates = {region.code: (region.aggregate,) for region in plan.regions}
    return WanConfig.from_matrix(aggregates, matrix, seed=seed)


def setup_wan(
    plan: ClusterPlan, matrix: LatencyMatrix, run_dir: Path, *, seed: int | None = None
) -> WanSpec:
    """Write the forwarder config, create the TUN and policy routes in core; return the argv.

    Call after ``build_topology(plan)``. Blocking; idempotent (rules and routes
    are replaced, not duplicated). Raises ``ValidationError`` for a region pair
    without an RTT (before touching anything) and ``NetworkError`` if the
    core namespace is missing or a command fails. Until the forwarder has
    attached, traffic between regions is dropped (traffic to the root link is not).
    """
    config = wan_config(plan, matrix, seed=seed)
    core = plan.core_netns
    if not netns_exists(core):
        raise NetworkError(
            f"the core namespace {core} does not exist", hint="build the topology first"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / CONFIG_NAME
    tmp = config_path.with_suffix(".tmp")
    tmp.write_text(config.to_json())
    tmp.replace(config_path)

    if not link_exists(TUN_NAME, netns=core):
        ip("tuntap", "add", "dev", TUN_NAME, "mode", "tun", netns=core)
    remote_links = [r.link for r in plan.remote_hosts]
    links = ["all", "default", TUN_NAME, "root", *(f"r-{r.code}" for r in plan.regions)]
    links += remote_links
    for link in links:
        set_sysctl(core, f"net.ipv4.conf.{link}.rp_filter", "0")
    _delete_rules(plan)
    root_subnet = ipaddress.ip_interface(f"{plan.root_address}/24").network
    lines = [
        f"link set {TUN_NAME} up",
        f"route replace default dev {TUN_NAME} table {ROUTE_TABLE}",
        f"rule add to {root_subnet} priority {BYPASS_PRIORITY} lookup main",
        *(
            f"rule add iif r-{r.code} priority {REGION_PRIORITY} lookup {ROUTE_TABLE}"
            for r in plan.regions
        ),
        # a remote host is delayed as its region (its /30 lies in the region's aggregate)
        *(
            f"rule add iif {link} priority {REGION_PRIORITY} lookup {ROUTE_TABLE}"
            for link in remote_links
        ),
    ]
    ip_batch(lines, netns=core)
    inner = [sys.executable, "-m", "ferry.cluster.wan_forwarder", "--tun", TUN_NAME]
    argv = netns_enter_argv(core, [*inner, "--config", str(config_path)])
    return WanSpec(netns=core, tun=TUN_NAME, config_path=config_path, argv=argv)


def teardown_wan(plan: ClusterPlan, run_dir: Path) -> None:
    """Remove what ``setup_wan`` made: rules, the table-100 route, the TUN, the config.

    Idempotent; a missing core namespace is fine (deleting it removes all of
    this anyway). Stop the forwarder first, or its TUN lives on until it exits.
    """
    core = plan.core_netns
    if netns_exists(core):
        _delete_rules(plan)
        ip_batch(
            [
                f"route flush table {ROUTE_TABLE}",
                f"tuntap del dev {TUN_NAME} mode tun",
            ],
            netns=core,
            force=True,
        )
    (run_dir / CONFIG_NAME).unlink(missing_ok=True)


def forwarder_attached(spec: WanSpec) -> bool:
    """True while a process holds the TUN open (its carrier is up). Blocking: runs ``ip``."""
    out = ip("-o", "link", "show", "dev", spec.tun, netns=spec.netns, check=False)
    return bool(out.strip()) and "NO-CARRIER" not in out


def wait_forwarder_attached(spec: WanSpec, timeout: float = 10.0) -> None:
    """Block until the forwarder holds the TUN. Raises ``UnavailableError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not forwarder_attached(spec):
        if time.monotonic() > deadline:
            raise UnavailableError(
                f"the WAN forwarder did not attach to {spec.tun} in {spec.netns} "
                f"within {timeout:.0f}s",
                hint="see the forwarder's log",
            )
        time.sleep(0.02)


def _delete_rules(plan: ClusterPlan) -> None:
    """Delete our rules (by priority, repeatedly: ``ip rule del`` removes one match each)."""
    for priority in (BYPASS_PRIORITY, REGION_PRIORITY):
        for _ in range(len(plan.regions) + len(plan.remote_hosts) + 2):
            listed = ip("rule", "show", "priority", str(priority), netns=plan.core_netns)
            if not listed.strip():
                break
            ip("rule", "del", "priority", str(priority), netns=plan.core_netns, check=False)
