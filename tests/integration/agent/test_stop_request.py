"""`ferry machine stop --signal/--timeout` through a real server, store and runc container.

The control plane runs as its own process (so it can be kill -9'd); the
agent is the real ``plan_host`` + ``StepRunner`` on a real ``RuncDriver``,
driven by this test one cycle at a time, reading and reporting over HTTP
with the real ``FerryClient``. Only the machine network is left out (the
container gets a fresh, empty network namespace) so no host bridge is made.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ferry.agent.reconcile import MachineMemory, container_id, plan_host
from ferry.agent.runner import HostIdentity, StepRunner
from ferry.client import FerryClient
from ferry.model import Machine, MachineConfig, MachineState
from ferry.runtime.driver import LocalImage
from ferry.runtime.runc import RuncDriver

from ..images import free_loopback_port

pytestmark = pytest.mark.integration

HOST = HostIdentity("ams-1", "ams")
# Ignores SIGTERM and SIGINT (tini forwards them to this shell); only SIGKILL ends it.
STUBBORN = "trap '' TERM INT; echo trapped; sleep 600 & wait"
# The config's stop: long enough that a test passing under it proves the request was used.
CONFIG_TIMEOUT = 30.0


class OneImage:
    """The host's image store, holding the one busybox image the machine runs."""

    def __init__(self, reference: str, image: LocalImage) -> None:
        self.reference = reference
        self.image = image

    def ensure(self, reference: str) -> LocalImage:
        assert reference == self.reference, reference
        return self.image


class NoNetwork:
    """Machines get runc's fresh network namespace: nothing to make or remove on the host."""

    def ensure(self, machine_id: str, private_ip: str) -> None:
        return None

    def remove(self, machine_id: str) -> None:
        return None


class ControlPlane:
    """A ``ferry server`` process on loopback over a state.db under ``home``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        code = (
            "import sys; from pathlib import Path; from ferry.server import run_server; "
            "run_server(Path(sys.argv[1]), [sys.argv[2]], log_level='warning')"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(self.home), f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                assert self.process.stderr is not None
                raise AssertionError(f"server exited: {self.process.stderr.read().decode()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("server did not become healthy in 20 s")

    def kill_9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def client(self) -> FerryClient:
        token = (self.home / "server" / "admin-token").read_text().strip()
        return FerryClient(self.url, token, timeout=10)


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    running = ControlPlane(tmp_path / "home")
    running.start()
    try:
        yield running
    finally:
        running.kill_9()


class Agent:
    """One host agent whose cycles the test runs; a new ``Agent`` is an agent restart."""

    def __init__(self, client: FerryClient, driver: RuncDriver, images: OneImage) -> None:
        self.client = client
        self.driver = driver
        self.memory: dict[str, MachineMemory] = {}
        self.runner = StepRunner(
            HOST,
            driver,
            images,
            NoNetwork(),  # type: ignore[arg-type]
            client,
            self.memory,
        )

    def machine(self, machine_id: str) -> Machine:
        _, machines = self.client.watch_host_machines(HOST.host_id, since=0, timeout=0)
        return next(m for m in machines if m.id == machine_id)

    def converge(self, done: Callable[[], bool], timeout: float = 60.0) -> None:
        """Run agent cycles (each step to its end, as the daemon does) until ``done()``."""
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "the agent did not converge in time"
            self.client.heartbeat(HOST.host_id)
            _, desired = self.client.watch_host_machines(HOST.host_id, since=0, timeout=0)
            steps = plan_host(desired, self.driver.list(), self.memory, set(), time.monotonic())
            for step in steps:
                self.runner.run(step)
            if not steps:
                time.sleep(0.05)

    def wait_armed(self, machine_id: str) -> None:
        """Until the machine runs and its process has set its traps."""

        def armed() -> bool:
            m = self.machine(machine_id)
            log = self.driver.log_path(container_id(m))
            return m.state is MachineState.STARTED and log.exists() and "trapped" in log.read_text()

        self.converge(armed)

    def stop_and_time(self, machine_id: str) -> float:
        """Seconds the agent takes to bring the machine to ``stopped``."""
        started = time.monotonic()
        self.converge(lambda: self.machine(machine_id).state is MachineState.STOPPED)
        return time.monotonic() - started


def test_stop_request_signal_and_timeout_are_used_and_survive_kill_9(
    plane: ControlPlane, driver: RuncDriver, busybox_image: LocalImage, busybox_reference: str
) -> None:
    images = OneImage(busybox_reference, busybox_image)
    with plane.client() as client:
        client.register_host(
            host_id=HOST.host_id,
            region=HOST.region,
            address="127.0.0.1",
            cpus=2,
            memory_mb=2048,
            machine_subnet="10.1.0.0/24",
        )
        client.create_app("stubborn")
        config = MachineConfig.model_validate(
            {
                "image": busybox_reference,
                "init": {"cmd": ["sh", "-c", STUBBORN]},
                "restart": {"policy": "no"},
                "stop_config": {"signal": "SIGTERM", "timeout": f"{CONFIG_TIMEOUT:g}s"},
            }
        )
        machine_id = client.create_machine("stubborn", config).id
        Agent(client, driver, images).wait_armed(machine_id)

        client.stop_machine("stubborn", machine_id, signal="SIGKILL", timeout="1s")

    # The request is acknowledged: neither the server nor the agent may forget it.
    plane.kill_9()
    plane.start()
    with plane.client() as client:
        agent = Agent(client, driver, images)
        assert agent.machine(machine_id).effective_stop.signal == "SIGKILL"
        took = agent.stop_and_time(machine_id)
        stopped = client.get_machine("stubborn", machine_id)
        assert took < 5, f"SIGKILL stop took {took:.1f}s"
        assert stopped.exit_code == 137  # killed by SIGKILL, not by the config's SIGTERM
        assert driver.list() == []

        # A new start forgets the request; a stop with only a timeout keeps the
        # config's SIGTERM (ignored here), so SIGKILL comes after 2s, not 30s.
        client.start_machine("stubborn", machine_id)
        assert agent.machine(machine_id).stop_override is None
        agent.wait_armed(machine_id)
        client.stop_machine("stubborn", machine_id, timeout="2s")
        took = agent.stop_and_time(machine_id)
        assert 2 <= took < 8, f"stop with timeout 2s took {took:.1f}s"
        assert client.get_machine("stubborn", machine_id).exit_code == 137
        events = client.get_machine("stubborn", machine_id).events
        stopping = [e for e in events if e.type == "stop" and e.status == "stopping"]
        assert stopping[0].request["reason"] == "sending SIGTERM, SIGKILL after 2s"
        assert stopping[1].request["reason"] == "sending SIGKILL"
