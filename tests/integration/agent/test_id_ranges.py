"""A machine's host uid range through the real agent runner, server and runc: two
machines get different ranges, a machine keeps its range across a stop and start
and across an agent restart, and its range is freed when it is destroyed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.agent.reconcile import LABEL_MACHINE, container_id
from ferry.client import FerryClient
from ferry.model import Machine, MachineState
from ferry.runtime.runc import RuncDriver
from ferry.runtime.userns import IdRangeAllocator, range_owner

from ...server_process import ServerProcess
from .harness import HOST, Agent, OneImage, create_machine, register_host

pytestmark = pytest.mark.integration


def watched(client: FerryClient) -> list[Machine]:
    """The machines the control plane assigns to the harness's host (destroyed ones go)."""
    _, machines = client.watch_host_machines(HOST.host_id, since=0, timeout=0)
    return machines


def host_uid(agent: Agent, machine_id: str) -> int:
    """The host uid of the machine's init process (``/proc/<pid>/status``)."""
    status = agent.driver.inspect(container_id(agent.machine(machine_id)))
    assert status.pid is not None, status
    for line in Path(f"/proc/{status.pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_each_machine_keeps_its_own_range_until_it_is_destroyed(
    plane: ServerProcess, driver: RuncDriver, images: OneImage, busybox_reference: str
) -> None:
    table = IdRangeAllocator(driver.state_dir / "id-ranges.json")  # the harness agent's
    with plane.client() as client:
        register_host(client)
        client.create_app("boxes")
        first = create_machine(client, "boxes", busybox_reference, "sleep 600")
        second = create_machine(client, "boxes", busybox_reference, "sleep 600")
        agent = Agent(client, driver, images)
        agent.reach(first, MachineState.STARTED)
        agent.reach(second, MachineState.STARTED)

        uids = {first: host_uid(agent, first), second: host_uid(agent, second)}
        held = {owner.removeprefix(f"{HOST.host_id}/"): r for owner, r in table.held().items()}
        assert uids == {first: held[first].host_id, second: held[second].host_id}
        assert uids[first] != uids[second] and min(uids.values()) >= 100_000

        client.stop_machine("boxes", first, signal="SIGKILL")
        agent.reach(first, MachineState.STOPPED)
        client.start_machine("boxes", first)
        restarted = Agent(client, driver, images)  # a new agent process on the same host
        restarted.reach(first, MachineState.STARTED)
        assert host_uid(restarted, first) == uids[first]

        client.delete_machine("boxes", first, force=True)
        restarted.converge(lambda: not any(m.id == first for m in watched(client)))
        assert not any(c.labels.get(LABEL_MACHINE) == first for c in driver.list())
        owners = set(table.held())
        assert owners == {range_owner(HOST.host_id, second)}
