"""The embedded cluster's address plan."""

from __future__ import annotations

import ipaddress

import pytest

from ferry.errors import ValidationError
from ferry.net.plan import plan_cluster


def test_every_subnet_is_distinct_and_inside_the_cluster_network() -> None:
    plan = plan_cluster("fyab12", 77, ["ams", "iad", "sin"], 3)
    cluster = ipaddress.ip_network(plan.cluster_cidr)
    subnets = [ipaddress.ip_network(h.machine_subnet) for h in plan.hosts]
    subnets += [ipaddress.ip_network(r.bridge_cidr) for r in plan.regions]
    subnets += [ipaddress.ip_network(f"{r.uplink_core}/30", strict=False) for r in plan.regions]
    assert all(s.subnet_of(cluster) for s in subnets)  # type: ignore[arg-type]
    for i, a in enumerate(subnets):
        for b in subnets[i + 1 :]:
            assert not a.overlaps(b), (a, b)


def test_region_aggregate_covers_its_hosts_and_machines() -> None:
    plan = plan_cluster("fyab12", 77, ["ams", "iad"], 2)
    for region in plan.regions:
        aggregate = ipaddress.ip_network(region.aggregate)
        for host in region.hosts:
            assert ipaddress.ip_address(host.address) in aggregate
            assert ipaddress.ip_network(host.machine_subnet).subnet_of(aggregate)  # type: ignore[arg-type]


def test_names_carry_the_prefix() -> None:
    plan = plan_cluster("fyab12", 77, ["ams"], 1)
    assert plan.core_netns == "fyab12-core"
    assert plan.regions[0].netns == "fyab12-ams"
    assert plan.hosts[0].netns == "fyab12-ams-1"
    assert plan.hosts[0].host_id == "ams-1"


@pytest.mark.parametrize(
    ("regions", "hosts", "message"),
    [
        (["ams", "ams"], 1, "listed twice"),
        (["AMS"], 1, "invalid region code"),
        (["ams"], 0, "hosts per region"),
        ([f"r{i}" for i in range(15)], 1, "regions are supported"),
    ],
)
def test_bad_layouts_are_refused_with_a_reason(
    regions: list[str], hosts: int, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        plan_cluster("fyab12", 77, regions, hosts)


def test_unknown_region_lookup_names_the_known_ones() -> None:
    plan = plan_cluster("fyab12", 77, ["ams", "iad"], 1)
    with pytest.raises(ValidationError) as info:
        plan.region("xyz")
    assert "ams, iad" in str(info.value)
