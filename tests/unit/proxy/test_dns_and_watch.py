"""Edge DNS answers and the routing table's static stability (watch + disk cache)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from ferry.errors import UnavailableError
from ferry.model import DesiredState, Machine, MachineConfig, MachineState
from ferry.proxy.dns import answer_query
from ferry.proxy.routes import machine_address
from ferry.proxy.watch import RouteWatcher


def ask(name: str, rdtype: str = "A") -> dns.message.Message:
    wire = answer_query(dns.message.make_query(name, rdtype).to_wire(), "ferry.test", "10.77.250.1")
    assert wire is not None
    return dns.message.from_wire(wire)


def test_app_names_resolve_to_the_edge() -> None:
    reply = ask("hello.ferry.test")
    assert [r.address for r in reply.answer[0]] == ["10.77.250.1"]


def test_aaaa_is_empty_and_foreign_names_do_not_exist() -> None:
    assert ask("hello.ferry.test", "AAAA").answer == []
    assert ask("example.com").rcode() == dns.rcode.NXDOMAIN


def test_garbage_gets_no_answer() -> None:
    assert answer_query(b"\x00\x01garbage", "ferry.test", "10.77.250.1") is None


def machine(mid: str, app: str = "hello") -> Machine:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    return Machine(
        id=mid, name=mid, app_name=app, state=MachineState.STARTED,
        desired_state=DesiredState.STARTED, region="ams", instance_id="i1",
        private_ip="fdaa:0:1:0:1:0:1:2", host_ip="10.77.17.2",
        config=MachineConfig(image="img"), host_id="ams-1",
        created_at=now, updated_at=now,
    )  # fmt: skip


class FakeSource:
    def __init__(self) -> None:
        self.version = 5
        self.machines = [machine("m1")]
        self.down = False

    def watch_routes(self, since: int = 0, timeout: float = 30) -> tuple[int, list[Machine]]:
        if self.down:
            raise UnavailableError("cannot reach the Ferry API")
        return self.version, list(self.machines)


def test_table_survives_a_restart_while_the_control_plane_is_down(tmp_path: Path) -> None:
    source = FakeSource()
    cache = tmp_path / "routes.json"
    first = RouteWatcher(source, cache)
    assert first.poll_once()
    assert [b.machine_id for b in first.current().backends("hello")] == ["m1"]

    source.down = True
    restarted = RouteWatcher(source, cache)
    assert restarted.load_cached().version == 5
    with pytest.raises(UnavailableError):
        restarted.poll_once()
    assert [b.machine_id for b in restarted.current().backends("hello")] == ["m1"]

    source.down = False
    source.version, source.machines = 6, [machine("m1"), machine("m2")]
    assert restarted.poll_once()
    assert {b.machine_id for b in restarted.current().backends("hello")} == {"m1", "m2"}


def test_machines_off_the_edges_lan_are_reached_over_6pn(tmp_path: Path) -> None:
    lan = (ipaddress.IPv4Network("10.77.16.0/20"),)
    remote = machine("m2").model_copy(
        update={"host_ip": "10.200.0.2", "private_ip": "fdaa:0:1:0:9:0:1:2"}
    )
    assert machine_address(machine("m1"), lan) == "10.77.17.2"
    assert machine_address(remote, lan) == "fdaa:0:1:0:9:0:1:2"
    assert machine_address(remote, None) == "10.200.0.2"  # no LAN given: every host is on it
    source = FakeSource()
    source.machines = [machine("m1"), remote]
    watcher = RouteWatcher(source, tmp_path / "routes.json", lan)
    watcher.poll_once()
    addresses = {b.machine_id: b.address for b in watcher.current().apps["hello"]}
    assert addresses == {"m1": "10.77.17.2", "m2": "fdaa:0:1:0:9:0:1:2"}
