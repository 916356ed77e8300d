"""A suspended machine keeps its memory: through a real server, store, agent and runc.

The machine's process holds a counter in a shell variable (nowhere else: no
file, no tmpfs) and answers each line written to a FIFO in its root with
``count=N`` on its output. It answers 1 and 2, is suspended, both the server
and the agent are killed and come back, it is started again and answers 3:
its memory survived, and nothing restarted it. Server as a process, agent
cycles driven by the test (``harness``).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time

import pytest

from ferry.agent.reconcile import container_id, plan_host
from ferry.model import MachineState
from ferry.runtime.driver import ContainerState
from ferry.runtime.runc import RuncDriver

from ...server_process import ServerProcess
from .harness import HOST, Agent, OneImage, create_machine, register_host

pytestmark = pytest.mark.integration

# A reopen can race the previous writer's close and read EOF: that is no question.
COUNTER = (
    "mkfifo /ask; n=0; echo ready; "
    "while true; do read line < /ask || continue; n=$((n+1)); echo count=$n; done"
)


def ask(driver: RuncDriver, cid: str, expected: int, timeout: float = 10.0) -> None:
    """Write one line into the machine's FIFO; wait for ``count=<expected>`` in its log."""
    fifo = driver.rootfs_path(cid) / "ask"
    deadline = time.monotonic() + timeout
    while True:  # the shell opens the FIFO again after each answer
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno not in (errno.ENXIO, errno.ENOENT):
                raise
            log = driver.log_path(cid).read_text()
            assert time.monotonic() < deadline, (
                f"the machine never listened: {driver.inspect(cid)} {log}"
            )
            time.sleep(0.01)
    try:
        os.write(fd, b"next\n")
    finally:
        os.close(fd)
    log = driver.log_path(cid)
    while f"count={expected}\n" not in log.read_text():
        counts = [line for line in log.read_text().splitlines() if line.startswith("count=")]
        assert time.monotonic() < deadline, f"expected count={expected}, log has {counts}"
        time.sleep(0.01)


def runc_status(driver: RuncDriver, cid: str) -> str:
    argv = ["runc", "--root", str(driver.runc_root), "state", cid]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["status"])


def test_a_suspended_machine_keeps_its_memory_across_kill_9_of_server_and_agent(
    plane: ServerProcess, driver: RuncDriver, images: OneImage, busybox_reference: str
) -> None:
    with plane.client() as client:
        register_host(client)
        client.create_app("counter")
        machine_id = create_machine(
            client,
            "counter",
            busybox_reference,
            COUNTER,
            restart={"policy": "always"},
            stop_config={"signal": "SIGTERM", "timeout": "30s"},
        )
        agent = Agent(client, driver, images)
        agent.reach(machine_id, MachineState.STARTED)
        cid = container_id(agent.machine(machine_id))
        pid = driver.inspect(cid).pid
        ask(driver, cid, 1)
        ask(driver, cid, 2)

        client.suspend_machine("counter", machine_id)

    # Acknowledged but not yet acted on: the server forgets nothing.
    plane.kill_9()
    plane.start()
    with plane.client() as client:
        agent = Agent(client, driver, images)
        agent.reach(machine_id, MachineState.SUSPENDED)
        assert client.wait_machine("counter", machine_id, state="suspended", timeout=5)
        assert driver.inspect(cid).state is ContainerState.PAUSED
        assert runc_status(driver, cid) == "paused"
        events = [(e.type, e.status) for e in client.get_machine("counter", machine_id).events]
        assert events[:2] == [("suspend", "suspended"), ("suspend", "suspending")]

    plane.kill_9()
    plane.start()
    with plane.client() as client:
        # A restarted agent finds the frozen container and leaves it frozen.
        fresh = Agent(client, driver, images)
        _, desired = client.watch_host_machines(HOST.host_id, since=0, timeout=0)
        assert plan_host(desired, driver.list(), fresh.memory, set(), time.monotonic()) == []

        assert client.start_machine("counter", machine_id) == "suspended"
        fresh.reach(machine_id, MachineState.STARTED)
        ask(driver, cid, 3)  # not 1: the same process, its memory intact
        assert driver.inspect(cid).pid == pid
        assert runc_status(driver, cid) == "running"

        # Stop of a suspended machine thaws it first: the process gets SIGTERM at once.
        client.suspend_machine("counter", machine_id)
        fresh.reach(machine_id, MachineState.SUSPENDED)
        client.stop_machine("counter", machine_id)
        began = time.monotonic()
        fresh.reach(machine_id, MachineState.STOPPED)
        assert time.monotonic() - began < 5  # not the 30 s stop timeout
        assert client.get_machine("counter", machine_id).exit_code == 143
        assert driver.list() == []
