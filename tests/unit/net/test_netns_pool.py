"""The agent prepares namespaces for exactly the addresses the control plane hands out next."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pytest

from ferry.model import DesiredState, Host, HostStatus, Machine, MachineConfig, MachineState
from ferry.net import netns_pool
from ferry.net.netns_pool import PreparedNamespaces, next_free_addresses
from ferry.server.placement import allocate_host_ip

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_next_free_skips_network_gateway_and_used() -> None:
    used = {"10.1.0.2", "10.1.0.3", "10.1.0.5"}
    assert next_free_addresses("10.1.0.0/24", used, 3) == ["10.1.0.4", "10.1.0.6", "10.1.0.7"]


def test_a_full_subnet_has_no_next_address() -> None:
    assert next_free_addresses("10.1.0.0/30", {"10.1.0.2"}, 2) == []


def _machine(n: int, ip: str, state: MachineState) -> Machine:
    return Machine(
        id=f"m{n:013d}",
        name=f"m{n}",
        app_name="hello",
        state=state,
        desired_state=DesiredState.STARTED,
        region="ams",
        instance_id="01",
        private_ip="fdaa:0:1:0:1:0:1:2",
        host_ip=ip,
        config=MachineConfig(image="busybox"),
        host_id="ams-1",
        created_at=NOW,
        updated_at=NOW,
    )


def test_the_first_prepared_address_is_the_one_the_control_plane_allocates() -> None:
    host = Host(
        id="ams-1",
        region="ams",
        address="10.0.0.2",
        cpus=2,
        memory_mb=2048,
        machine_subnet="10.1.0.0/24",
        status=HostStatus.UP,
        last_heartbeat=NOW,
        registered_at=NOW,
    )
    machines = [
        _machine(1, "10.1.0.2", MachineState.STARTED),
        _machine(2, "10.1.0.3", MachineState.DESTROYED),  # its address is free again
        _machine(3, "10.1.0.4", MachineState.STOPPED),
    ]
    live = [m.host_ip for m in machines if m.state is not MachineState.DESTROYED]
    predicted = next_free_addresses(host.machine_subnet, live, 2)
    assert predicted[0] == allocate_host_ip(host, machines) == "10.1.0.3"


class FakeIp:
    """Stands in for ``ip`` and the netns syscalls; ``gate`` holds a make until set."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.making = threading.Event()

    def ip_batch(self, lines: list[str], *, netns: str | None = None) -> None:
        if netns is None:
            self.making.set()
            assert self.gate.wait(5)
            self.names.add(lines[0].removeprefix("netns add "))

    def rename(self, old: str, new: str) -> None:
        self.names.remove(old)
        self.names.add(new)

    def delete(self, name: str) -> None:
        self.names.discard(name)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeIp:
    fake = FakeIp()
    monkeypatch.setattr(netns_pool, "ip_batch", fake.ip_batch)
    monkeypatch.setattr(netns_pool, "rename_netns", fake.rename)
    monkeypatch.setattr(netns_pool, "delete_netns_now", fake.delete)
    monkeypatch.setattr(netns_pool, "list_netns", lambda p: sorted(fake.names))
    return fake


def test_a_start_renames_the_namespace_prepared_for_its_address(fake: FakeIp) -> None:
    pool = PreparedNamespaces("t-", "br0", "10.1.0.0/24", size=2)
    pool.refill_soon(["10.1.0.2"])
    assert pool.wait_idle(5) == ["10.1.0.3", "10.1.0.4"]
    assert pool.take("10.1.0.3", "t-vm-m1")
    assert fake.names == {"t-vm-m1", "t-pool-10.1.0.4"}
    assert not pool.take("10.1.0.9", "t-vm-m2")  # not prepared: the start builds its own


def test_a_start_waits_for_its_namespace_being_made_rather_than_making_a_second(
    fake: FakeIp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=netns_pool.log.name)
    pool = PreparedNamespaces("t-", "br0", "10.1.0.0/24", size=1)
    fake.gate.clear()
    pool.refill_soon([])
    assert fake.making.wait(5)
    took: list[bool] = []
    waiting = threading.Event()
    handler = logging.Handler()
    handler.emit = lambda record: waiting.set()  # type: ignore[method-assign]
    netns_pool.log.addHandler(handler)
    try:
        start = threading.Thread(target=lambda: took.append(pool.take("10.1.0.2", "t-vm-m1")))
        start.start()
        assert waiting.wait(5)  # the start is waiting for the namespace being made
        fake.gate.set()
        start.join(5)
    finally:
        netns_pool.log.removeHandler(handler)
    assert took == [True]
    assert fake.names == {"t-vm-m1"}


def test_namespaces_no_longer_next_are_deleted_and_drain_keeps_other_subnets(
    fake: FakeIp,
) -> None:
    pool = PreparedNamespaces("t-", "br0", "10.1.0.0/24", size=1)
    pool.refill_soon([])
    pool.wait_idle(5)
    pool.refill_soon(["10.1.0.2"])  # .2 was given to a machine another way
    assert pool.wait_idle(5) == ["10.1.0.3"]
    assert fake.names == {"t-pool-10.1.0.3"}
    fake.names.add("t-pool-10.2.0.7")  # another host's
    pool.drain()
    assert fake.names == {"t-pool-10.2.0.7"}
