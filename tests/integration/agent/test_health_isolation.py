"""A machine whose check endpoint answers garbage leaves every other machine's checks and
logs flowing.

Real processes throughout: the control plane is a ``ferry server`` process; each
machine's check endpoint is its own process on the machine's private address
(on loopback), writing its output to the file the runtime keeps as the
container's log; the agent is the real ``ferry.agent.daemon.Agent`` running its
watch and health threads as the daemon does (its reconcile loop is left out:
no containers are started, the test reports the machines started itself).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ferry.agent.daemon import Agent, AgentSettings
from ferry.agent.reconcile import container_id
from ferry.client import FerryClient
from ferry.model import Machine, MachineState

from ...server_process import ServerProcess
from ..images import free_loopback_port
from .harness import HOST, machine_config, register_host

pytestmark = pytest.mark.integration

APP = "checked"

# Each endpoint prints a line per request it answers; ``answer`` is the raw reply.
ENDPOINT = r"""
import socket, sys
address, port, answer = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode().decode("unicode_escape")
server = socket.create_server((address, port))
print("listening on", address, flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        conn.settimeout(5)
        try:
            conn.recv(65536)
            conn.sendall(answer.encode("latin-1"))
        except OSError:
            continue
    print("answered a check", flush=True)
"""

ANSWERS = {
    "good-a": r"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "good-b": r"HTTP/1.1 204 No Content\r\n\r\n",
    "not-http": r"SSH-2.0-OpenSSH_9.2\r\n",
    "bad-header": r"HTTP/1.1 200 OK\r\nthis line has no colon\r\n\r\n",
}


def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def test_garbage_from_one_check_endpoint_leaves_the_others_checked_and_logged(
    plane: ServerProcess, tmp_path: Path
) -> None:
    subnet = f"127.{secrets.randbelow(150) + 100}.{secrets.randbelow(250)}.0/24"
    port = free_loopback_port()
    endpoints: list[subprocess.Popen[bytes]] = []
    with plane.client() as client:
        register_host(client, cpus=8, machine_subnet=subnet)
        client.create_app(APP)
        config = machine_config(
            "busybox",
            checks={"web": {"type": "http", "port": port, "path": "/health", "interval": "1s"}},
        )
        machines = {name: client.create_machine(APP, config, name=name) for name in ANSWERS}
        agent = Agent(
            AgentSettings(
                host_id=HOST.host_id,
                region=HOST.region,
                address="127.0.0.1",
                cpus=8,
                memory_mb=2048,
                machine_subnet=subnet,
                state_dir=tmp_path / "agent",
                netns_prefix="unused",
                api_url=plane.url,
                token=plane.token,
            )
        )
        try:
            for name, m in machines.items():
                log = agent.driver.log_path(container_id(m))
                log.parent.mkdir(parents=True)
                with log.open("wb") as out:
                    endpoints.append(
                        subprocess.Popen(
                            [
                                sys.executable,
                                "-c",
                                ENDPOINT,
                                m.host_ip,
                                str(port),
                                ANSWERS[name],
                            ],
                            stdout=out,
                            stderr=subprocess.STDOUT,
                        )
                    )
                until(lambda path=log: b"listening" in path.read_bytes(), 10, f"{name} listening")
                client.report_status(
                    HOST.host_id, m.id, MachineState.STARTED, m.instance_id, "start", "ok"
                )
            # The daemon's own threads (see Agent.run), without its reconcile loop.
            threads = [
                threading.Thread(target=agent._watch_loop, daemon=True),
                threading.Thread(target=agent._heartbeat_loop, daemon=True),
                threading.Thread(target=agent._health_loop, daemon=True),
            ]
            for thread in threads:
                thread.start()
            run_and_check(client, machines)
            assert all(t.is_alive() for t in threads), "an agent thread died"
        finally:
            agent.stop()
            agent.client.close()
            for process in endpoints:
                process.kill()
                process.wait(timeout=10)


def run_and_check(client: FerryClient, machines: dict[str, Machine]) -> None:
    def checks(name: str) -> list[tuple[str, str]]:
        m = client.get_machine(APP, machines[name].id)
        return [(c.status, c.output) for c in m.checks]

    def answered(name: str) -> int:
        return client.machine_logs(APP, machines[name].id).count("answered a check")

    def critical_saying(name: str, said: str) -> bool:
        return any(s == "critical" and said in out for s, out in checks(name))

    until(
        lambda: (
            critical_saying("not-http", "not an HTTP answer")
            and critical_saying("bad-header", "malformed header line")
            and all(s == "passing" for s, _ in checks("good-a") + checks("good-b"))
            and all(checks(name) for name in machines)
        ),
        timeout=30,
        what="good machines passing and garbage ones critical with the reason",
    )
    # Logs of every machine arrive, the garbage ones' included, and keep arriving
    # for the healthy ones after the garbage was met (the fast re-probe of a failing
    # check keeps the garbage endpoints answering too).
    until(lambda: all(answered(name) >= 1 for name in machines), 30, "every machine's logs")
    before = {name: answered(name) for name in machines}
    until(
        lambda: all(answered(name) > before[name] for name in machines),
        timeout=30,
        what="logs still flowing after the garbage answers",
    )
