"""A test-driven host agent on a real runc driver, for the agent's integration tests.

The agent is the real ``plan_host`` + ``StepRunner`` on a real ``RuncDriver``,
driven by the test one cycle at a time, reading and reporting over HTTP with
the real ``FerryClient`` to a control plane process (``tests.server_process``,
the ``plane`` fixture) that the test may kill -9. Only the machine network is
left out by default (the container gets a fresh, empty network namespace) so no
host bridge is made; a test of machine networking passes its own. The
``images`` fixture is in this folder's ``conftest``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ferry.agent.reconcile import MachineMemory, container_id, plan_host
from ferry.agent.runner import HostIdentity, StepRunner, VolumeSource
from ferry.client import FerryClient
from ferry.model import Machine, MachineConfig, MachineState
from ferry.runtime.driver import LocalImage
from ferry.runtime.runc import RuncDriver
from ferry.runtime.userns import IdRangeAllocator

__all__ = [
    "HOST",
    "Agent",
    "NoNetwork",
    "OneImage",
    "create_machine",
    "machine_config",
    "register_host",
]

HOST = HostIdentity("ams-1", "ams")


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

    def ensure(self, machine_id: str, host_ip: str, private_ip: str = "") -> None:
        return None

    def remove(self, machine_id: str, private_ip: str = "") -> None:
        return None


def register_host(
    client: FerryClient, *, cpus: int = 2, machine_subnet: str = "10.1.0.0/24"
) -> None:
    """Register ``HOST`` (on 127.0.0.1, 2048 MB) so machines are placed on it."""
    client.register_host(
        host_id=HOST.host_id,
        region=HOST.region,
        address="127.0.0.1",
        cpus=cpus,
        memory_mb=2048,
        machine_subnet=machine_subnet,
    )


def machine_config(image: str, command: str | None = None, **config: Any) -> MachineConfig:
    """A validated config of ``image`` running ``sh -c command``; ``config`` adds Fly's keys."""
    fields: dict[str, Any] = {"image": image, **config}
    if command is not None:
        fields["init"] = {"cmd": ["sh", "-c", command]}
    return MachineConfig.model_validate(fields)


def create_machine(client: FerryClient, app: str, image: str, command: str, **config: Any) -> str:
    """Create a machine of ``app`` running ``sh -c command`` in ``image``; return its id."""
    return client.create_machine(app, machine_config(image, command, **config)).id


class Agent:
    """One host agent whose cycles the test runs; a new ``Agent`` is an agent restart."""

    def __init__(
        self,
        client: FerryClient,
        driver: RuncDriver,
        images: OneImage,
        network: Any = None,
        volumes: VolumeSource | None = None,
    ) -> None:
        """``network``: the host's machine network (default: none, ``NoNetwork``);
        ``volumes``: where machines' volumes come from (default: none kept)."""
        self.client = client
        self.driver = driver
        self.memory: dict[str, MachineMemory] = {}
        self.runner = StepRunner(
            HOST,
            driver,
            images,
            network or NoNetwork(),
            client,
            self.memory,
            secrets=client,  # as the daemon does: each start asks for the app's secrets
            # as the daemon runs machines: each in a user namespace of its own
            id_ranges=IdRangeAllocator(driver.state_dir / "id-ranges.json"),
            volumes=volumes,
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

    def reach(self, machine_id: str, state: MachineState) -> None:
        """Run agent cycles until the machine is in ``state``."""
        self.converge(lambda: self.machine(machine_id).state is state)

    def wait_output(self, machine_id: str, text: str) -> None:
        """Until the machine runs and its current container's process has written ``text``
        (a started process may not have written its first line yet)."""

        def written() -> bool:
            m = self.machine(machine_id)
            log = self.driver.log_path(container_id(m))
            return m.state is MachineState.STARTED and log.exists() and text in log.read_text()

        self.converge(written)

    def wait_armed(self, machine_id: str) -> None:
        """Until the machine runs and its process has written ``trapped`` (its traps are set)."""
        self.wait_output(machine_id, "trapped")

    def stop_and_time(self, machine_id: str) -> float:
        """Seconds the agent takes to bring the machine to ``stopped``."""
        started = time.monotonic()
        self.reach(machine_id, MachineState.STOPPED)
        return time.monotonic() - started
