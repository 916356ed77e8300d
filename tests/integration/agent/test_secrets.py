"""A secret set through the real server reaches a real runc machine, and nowhere else.

The control plane is its own process; the agent (``harness``) runs a real
``StepRunner`` on a real ``RuncDriver``. The machine prints only a SHA-256 of
the variable it sees, so finding a value anywhere in the state, logs, API
answers or process command lines is a leak.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import uuid
from pathlib import Path

import pytest

from ferry.agent.reconcile import container_id
from ferry.client import FerryClient
from ferry.model.secrets import AppSecrets
from ferry.runtime.runc import RuncDriver

from ...server_process import ServerProcess
from .harness import Agent, OneImage, create_machine, register_host

pytestmark = pytest.mark.integration

SCRIPT = 'echo "sha=$(printf %s "$API_KEY" | sha256sum | cut -c1-64) mode=$MODE"; exec sleep 600'


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _files(root: Path) -> list[Path]:
    """Every regular file under ``root``, leaving out mounted container filesystems."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in ("rootfs", "work")]
        found += [Path(directory) / f for f in files]
    return found


def _command_lines() -> bytes:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes())
            except OSError:
                continue  # the process ended meanwhile
    return b"\n".join(lines)


def test_a_secret_reaches_the_machine_through_the_roll_and_is_nowhere_in_plain_text(
    plane: ServerProcess, driver: RuncDriver, images: OneImage, busybox_reference: str
) -> None:
    first, second = f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"
    with plane.client() as client:
        register_host(client)
        client.create_app("vault")
        client.set_secrets("vault", {"API_KEY": first, "MODE": "secret"}, stage=True)
        machine_id = create_machine(
            client,
            "vault",
            busybox_reference,
            SCRIPT,
            env={"MODE": "env"},
            restart={"policy": "no"},
        )
        agent = Agent(client, driver, images)

        def logged(value: str) -> bool:
            log = driver.log_path(container_id(agent.machine(machine_id)))
            return log.exists() and f"sha={_sha(value)} mode=secret" in log.read_text()

        agent.converge(lambda: logged(first))  # secrets win over the config's env

        # A change without --stage: the server rolls the machine; the CLI's call waits.
        answers: list[AppSecrets] = []

        def set_second() -> None:
            with FerryClient(plane.url, plane.token, timeout=10) as other:
                answers.append(other.set_secrets("vault", {"API_KEY": second}))

        setting = threading.Thread(target=set_second)
        setting.start()
        agent.converge(lambda: logged(second) and not setting.is_alive())
        setting.join()
        rollout = answers[0].rollout
        assert rollout is not None and rollout.state == "complete", rollout
        assert rollout.machines == [machine_id]

        running = agent.machine(machine_id)
        config = driver.containers_dir / container_id(running) / "config.json"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600

        with plane.http() as http:
            answers_text = "\n".join(
                http.get(path).text
                for path in (
                    f"/v1/apps/vault/machines/{machine_id}",
                    f"/v1/apps/vault/machines/{machine_id}/events",
                    "/v1/apps/vault/machines",
                    "/v1/apps/vault/secrets",
                    "/v1/hosts/ams-1/machines?timeout=0",
                    "/v1/apps/vault/releases",
                )
            )
        leaks: list[str] = []
        for value in (first, second):
            if value in answers_text:
                leaks.append(f"an API answer holds {value}")
            if value.encode() in _command_lines():
                leaks.append(f"a process command line holds {value}")
            for path in _files(plane.home) + _files(driver.state_dir):
                if path.name != "config.json" and value.encode() in path.read_bytes():
                    leaks.append(f"{path} holds {value}")
        assert leaks == []
