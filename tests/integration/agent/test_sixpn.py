"""6PN between machines on one host: started through the real API and agent, each machine
has its private address on ``eth0`` at once, and another machine of the organization
connects to ``[private_ip]:port`` — also after its target was stopped and started again.

The host is a network namespace the test makes; the agent's real ``MachineNetwork``
runs inside it (as the daemon runs inside its host), the runner and runc in the test.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.agent.reconcile import container_id
from ferry.client import FerryClient
from ferry.model import MachineState
from ferry.net import sixpn
from ferry.net.iproute import add_netns, delete_netns, list_netns, netns_enter_argv
from ferry.runtime.runc import RuncDriver

from ...server_process import ServerProcess
from .harness import Agent, OneImage, create_machine, register_host

pytestmark = pytest.mark.integration

SUBNET = "10.1.0.0/24"  # as register_host registers the host
SERVER = (
    'mkdir -p /tmp/www && echo "hello from $FLY_MACHINE_ID" > /tmp/www/index.html && '
    "httpd -p 8080 -h /tmp/www && echo listening; exec sleep 600"
)
CLIENT = (
    'echo "env=$FLY_PRIVATE_IP"; grep fly-local-6pn /etc/hosts; '
    # busybox's wget crashes on IPv6 URLs: speak HTTP with nc to [$TARGET]:8080
    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 \"$TARGET\" 8080 && echo reached; "
    "echo done; exec sleep 600"
)


class HostNamespaceNetwork:
    """The agent's ``MachineNetwork``, run inside the test's host namespace."""

    def __init__(self, host_netns: str, prefix: str) -> None:
        self.host_netns = host_netns
        self.prefix = prefix

    def _run(self, statements: str) -> str:
        code = (
            "from ferry.agent.network_hook import MachineNetwork as N; "
            f"n = N({self.prefix!r}, {SUBNET!r}, prepared=0); n.ensure_bridge(); {statements}"
        )
        argv = netns_enter_argv(self.host_netns, [sys.executable, "-c", code])
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    def ensure(self, machine_id: str, host_ip: str, private_ip: str = "") -> Path:
        out = self._run(f"print(n.ensure({machine_id!r}, {host_ip!r}, {private_ip!r}))")
        return Path(out.strip())

    def remove(self, machine_id: str, private_ip: str = "") -> None:
        self._run(f"n.remove({machine_id!r}, {private_ip!r})")


@pytest.fixture
def host_network() -> Iterator[HostNamespaceNetwork]:
    prefix = f"sx{secrets.token_hex(3)}-"
    host = f"{prefix}host"
    add_netns(host)
    try:
        yield HostNamespaceNetwork(host, prefix)
    finally:
        for name in list_netns(prefix):
            delete_netns(name)


def _log(agent: Agent, driver: RuncDriver, machine_id: str) -> str:
    path = driver.log_path(container_id(agent.machine(machine_id)))
    return path.read_text() if path.exists() else ""


def _reaches(client: FerryClient, agent: Agent, driver: RuncDriver, target: str, image: str) -> str:
    """Start a client machine that asks ``[target]:8080`` for ``/``; its log once done."""
    address = client.get_machine("six", target).private_ip
    visitor = create_machine(client, "six", image, CLIENT, env={"TARGET": address})
    agent.converge(lambda: "done" in _log(agent, driver, visitor))
    return _log(agent, driver, visitor)


def test_machines_of_one_org_reach_each_other_over_6pn(
    plane: ServerProcess,
    driver: RuncDriver,
    images: OneImage,
    busybox_reference: str,
    host_network: HostNamespaceNetwork,
) -> None:
    with plane.client() as client:
        register_host(client, cpus=4)
        client.create_app("six")
        server = create_machine(client, "six", busybox_reference, SERVER)
        agent = Agent(client, driver, images, network=host_network)
        agent.wait_output(server, "listening")
        address = client.get_machine("six", server).private_ip
        assert sixpn.parse(address).machine == 1

        log = _reaches(client, agent, driver, server, busybox_reference)
        assert f"hello from {server}" in log and "reached" in log, log
        visitor = client.list_machines("six")[-1]
        assert f"env={visitor.private_ip}" in log  # FLY_PRIVATE_IP is the 6PN address
        assert f"{visitor.private_ip}\tfly-local-6pn" in log
        assert visitor.private_ip != address

        # Stopped and started again by a restarted agent: same address, reachable again.
        client.stop_machine("six", server)
        agent.reach(server, MachineState.STOPPED)
        client.start_machine("six", server)
        agent = Agent(client, driver, images, network=host_network)
        agent.wait_output(server, "listening")
        assert client.get_machine("six", server).private_ip == address
        again = _reaches(client, agent, driver, server, busybox_reference)
        assert f"hello from {server}" in again and "reached" in again, again
