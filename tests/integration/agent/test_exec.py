"""Exec into a real machine: control plane process, the agent's real ``ExecLoop`` taking
orders over HTTP, ``runc exec`` in a busybox container in its own user namespace — with a
network namespace runc made, and (the embedded cluster's kind) with one the host made,
holding the machine's 6PN address.

``POST …/exec`` runs ``echo`` and ``sh -c 'exit 3'`` and answers their output and exit
code; the command sees the machine's env and runs as the machine's user; stdin reaches
it; a command past its timeout is killed (408) with everything it started; a stopped
machine is 409; ``ferry ssh console -C`` prints the output and exits with the code.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import ClientConnection, connect

from ferry.agent.console import ConsoleRunner
from ferry.agent.exec_loop import ExecLoop
from ferry.agent.reconcile import container_id
from ferry.errors import ApiError
from ferry.model import MachineState
from ferry.runtime.runc import RuncDriver

from ...server_process import ServerProcess
from .harness import HOST, Agent, OneImage, create_machine, register_host
from .test_sixpn import HostNamespaceNetwork, host_network

__all__ = ["host_network"]  # the fixture of the 6PN tests: a host namespace with a bridge

pytestmark = pytest.mark.integration


@pytest.fixture
def exec_loop(plane: ServerProcess, driver: RuncDriver) -> Iterator[None]:
    """The agent's exec loop on a thread, as the daemon runs it (consoles included);
    stopped at the end."""
    stopping = threading.Event()
    consoles = ConsoleRunner(
        plane.url, plane.token, HOST.host_id, driver.runc_binary, driver.runc_root
    )
    with plane.client() as client:
        loop = ExecLoop(
            client, driver, HOST.host_id, stopping, take_seconds=1, console=consoles.serve
        )
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stopping.set()
            thread.join(10)


def test_exec_runs_commands_in_a_real_machine_and_ssh_console_prints_them(
    plane: ServerProcess,
    driver: RuncDriver,
    images: OneImage,
    busybox_reference: str,
    exec_loop: None,
) -> None:
    with plane.client() as client:
        register_host(client)
        client.create_app("shell")
        machine_id = create_machine(
            client, "shell", busybox_reference, "sleep 1000", env={"GREETING": "hej"}
        )
        agent = Agent(client, driver, images)
        agent.reach(machine_id, MachineState.STARTED)

        echoed = client.exec_machine("shell", machine_id, ["echo", "hello", "world"])
        assert (echoed.stdout, echoed.stderr, echoed.exit_code) == ("hello world\n", "", 0)

        failed = client.exec_machine("shell", machine_id, ["sh", "-c", "echo oops >&2; exit 3"])
        assert (failed.stdout, failed.stderr, failed.exit_code) == ("", "oops\n", 3)

        # The machine's own environment and user; the image's env too; stdin arrives.
        seen = client.exec_machine(
            "shell",
            machine_id,
            ["sh", "-c", 'echo "$GREETING $IMAGE_VAR $(id -u)"; cat'],
            stdin="typed\n",
        )
        assert seen.stdout == "hej from-image 0\ntyped\n"

        missing = client.exec_machine("shell", machine_id, ["no-such-program"])
        assert missing.exit_code != 0 and "no-such-program" in missing.stderr

        started = time.monotonic()
        with pytest.raises(ApiError) as slow:
            client.exec_machine("shell", machine_id, ["sh", "-c", "sleep 60 & sleep 61"], timeout=1)
        took = time.monotonic() - started
        assert slow.value.status == 408, slow.value
        assert "sh did not finish within 1 s and was killed" in str(slow.value)
        assert took < 8, took
        # Nothing it started lives on in the machine.
        left = client.exec_machine("shell", machine_id, ["ps", "-o", "args"])
        assert "sleep 6" not in left.stdout, left.stdout

        env = {
            **os.environ,
            "FERRY_API_URL": plane.url,
            "FERRY_API_TOKEN": plane.token,
        }
        shown = subprocess.run(
            [sys.executable, "-m", "ferry", "ssh", "console", "-a", "shell", "-C", "echo hi there"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (shown.returncode, shown.stdout) == (0, "hi there\n"), shown.stderr
        code = subprocess.run(
            [
                sys.executable,
                "-m",
                "ferry",
                "ssh",
                "console",
                "-a",
                "shell",
                "--machine",
                machine_id,
                "-C",
                "sh -c 'echo to-err >&2; exit 3'",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (code.returncode, code.stdout, code.stderr) == (3, "", "to-err\n")

        client.stop_machine("shell", machine_id, signal="SIGKILL")
        agent.reach(machine_id, MachineState.STOPPED)
        with pytest.raises(ApiError) as stopped:
            client.exec_machine("shell", machine_id, ["echo", "no"])
        assert stopped.value.status == 409
        assert "commands run only in a started machine" in str(stopped.value)


def read_until(socket: ClientConnection, text: bytes, seen: bytearray) -> None:
    """Receive terminal output into ``seen`` until it holds ``text`` (10 s at most)."""
    deadline = time.monotonic() + 10
    while text not in seen:
        assert time.monotonic() < deadline, f"no {text!r} in {bytes(seen)!r}"
        message = socket.recv(timeout=max(deadline - time.monotonic(), 0.01))
        assert isinstance(message, bytes), message
        seen += message


def test_an_interactive_console_is_a_shell_on_a_terminal_in_the_machine(
    plane: ServerProcess,
    driver: RuncDriver,
    images: OneImage,
    busybox_reference: str,
    exec_loop: None,
) -> None:
    with plane.client() as client:
        register_host(client)
        client.create_app("tty")
        machine_id = create_machine(
            client, "tty", busybox_reference, "sleep 1000", env={"GREETING": "hej"}
        )
        agent = Agent(client, driver, images)
        agent.reach(machine_id, MachineState.STARTED)
        url, headers = client.console_address("tty", machine_id, cols=100, rows=30)

        with connect(url, additional_headers=headers, proxy=None) as socket:
            seen = bytearray()
            # As a person does, wait for the shell before typing (runc sizes the terminal
            # in the machine as it starts the shell). The output, not the typed echo, holds
            # "ready": the quotes are gone.
            socket.send(b"echo rea''dy\n")
            read_until(socket, b"ready", seen)
            socket.send(b"echo $GREETING-$((6*7)); stty size; tty\n")
            read_until(socket, b"hej-42", seen)
            read_until(socket, b"30 100", seen)  # the size the console asked for
            read_until(socket, b"/dev/pts/", seen)  # a real terminal in the machine
            socket.send(json.dumps({"resize": [120, 40]}))
            socket.send(b"sleep 0.2; stty size\n")
            read_until(socket, b"40 120", seen)
            socket.send(b"exit 5\n")
            deadline = time.monotonic() + 10
            while True:
                message = socket.recv(timeout=max(deadline - time.monotonic(), 0.01))
                if isinstance(message, str):
                    assert json.loads(message) == {"exit": 5}
                    break

        # Through the CLI, keys from a pipe: its end is Ctrl-D.
        env = {**os.environ, "FERRY_API_URL": plane.url, "FERRY_API_TOKEN": plane.token}
        shell = subprocess.run(
            [sys.executable, "-m", "ferry", "ssh", "console", "-a", "tty"],
            input="echo piped-$((2+3))\nexit 4\n",
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shell.returncode == 4, shell.stderr
        assert "piped-5" in shell.stdout

        # A user who hangs up ends the shell and what it started.
        with connect(url, additional_headers=headers, proxy=None) as socket:
            socket.send(b"sleep 777 & echo sta''rted\n")
            read_until(socket, b"started", bytearray())
            running = client.exec_machine("tty", machine_id, ["ps", "-o", "args"]).stdout
            assert "sleep 777" in running, running
        deadline = time.monotonic() + 10
        while "sleep 777" in client.exec_machine("tty", machine_id, ["ps", "-o", "args"]).stdout:
            assert time.monotonic() < deadline, "the hung-up console's sleep lives on"
            time.sleep(0.1)

        # Refusals arrive as an error message on the socket.
        with connect(
            url, additional_headers={"Authorization": "Bearer nope"}, proxy=None
        ) as socket:
            refused = json.loads(socket.recv(timeout=10))
        assert refused["status"] == 401 and "malformed token" in refused["error"]


#: The privilege lines of the machine's pid 1, then of the command itself.
PRIVILEGE = (
    "for f in /proc/1/status /proc/self/status; "
    "do grep -E '^(Cap|NoNewPrivs|Seccomp)' $f; echo --; done"
)


def test_exec_and_console_enter_a_user_namespaced_machine_whose_netns_the_host_made(
    plane: ServerProcess,
    driver: RuncDriver,
    images: OneImage,
    busybox_reference: str,
    host_network: HostNamespaceNetwork,
    exec_loop: None,
) -> None:
    with plane.client() as client:
        register_host(client)
        client.create_app("inside")
        machine_id = create_machine(client, "inside", busybox_reference, "sleep 1000")
        agent = Agent(client, driver, images, network=host_network)
        agent.reach(machine_id, MachineState.STARTED)
        machine = agent.machine(machine_id)
        container = container_id(machine)
        spec = json.loads((driver.containers_dir / container / "config.json").read_text())
        namespaces = {entry["type"]: entry.get("path") for entry in spec["linux"]["namespaces"]}
        assert "user" in namespaces and namespaces["network"], namespaces  # that kind of machine
        six_hex = ipaddress.IPv6Address(machine.private_ip).exploded.replace(":", "")

        done = client.exec_machine(
            "inside", machine_id, ["sh", "-c", "echo out; echo err >&2; exit 7"]
        )
        assert (done.stdout, done.stderr, done.exit_code) == ("out\n", "err\n", 7)

        # As the machine's user, in its uid mapping, its cgroup and its network namespace.
        uid = client.exec_machine("inside", machine_id, ["id", "-u"]).stdout
        assert uid == f"{spec['process']['user']['uid']}\n"
        mapped = client.exec_machine("inside", machine_id, ["cat", "/proc/self/uid_map"]).stdout
        mapping = spec["linux"]["uidMappings"][0]
        assert mapped.split() == [
            str(mapping["containerID"]),
            str(mapping["hostID"]),
            str(mapping["size"]),
        ]
        cgroups = client.exec_machine("inside", machine_id, ["cat", "/proc/self/cgroup"]).stdout
        lines = cgroups.splitlines()
        assert lines and all(line.endswith(driver.cgroups_path(container)) for line in lines), (
            cgroups
        )
        interfaces = client.exec_machine("inside", machine_id, ["cat", "/proc/net/if_inet6"]).stdout
        assert six_hex in interfaces, interfaces

        # No more privilege than the machine's own process: the same capability sets,
        # no_new_privs and seccomp filter as its pid 1.
        privilege = client.exec_machine("inside", machine_id, ["sh", "-c", PRIVILEGE]).stdout
        own, command, _ = privilege.split("--\n")
        assert command == own, privilege
        assert "NoNewPrivs:\t1" in command and "Seccomp:\t2" in command, command
        assert "CapBnd:\t000001ffffffffff" not in command, command

        with pytest.raises(ApiError) as slow:
            client.exec_machine(
                "inside", machine_id, ["sh", "-c", "sleep 60 & sleep 62"], timeout=1
            )
        assert slow.value.status == 408, slow.value
        left = client.exec_machine("inside", machine_id, ["ps", "-o", "args"])
        assert "sleep 6" not in left.stdout, left.stdout

        env = {**os.environ, "FERRY_API_URL": plane.url, "FERRY_API_TOKEN": plane.token}
        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "ferry",
                "ssh",
                "console",
                "-a",
                "inside",
                "-C",
                "cat /proc/net/if_inet6",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shown.returncode == 0 and six_hex in shown.stdout, shown

        url, headers = client.console_address("inside", machine_id, cols=90, rows=20)
        with connect(url, additional_headers=headers, proxy=None) as socket:
            seen = bytearray()
            socket.send(b"echo rea''dy\n")
            read_until(socket, b"ready", seen)
            socket.send(
                b"echo uid-$(id -u); grep -c " + six_hex.encode() + b" /proc/net/if_inet6; tty\n"
            )
            read_until(socket, b"uid-0", seen)
            read_until(socket, b"\r\n1\r\n", seen)  # the 6PN address is on an interface here
            read_until(socket, b"/dev/pts/", seen)
            socket.send(b"exit 6\n")
            deadline = time.monotonic() + 10
            while True:
                message = socket.recv(timeout=max(deadline - time.monotonic(), 0.01))
                if isinstance(message, str):
                    assert json.loads(message) == {"exit": 6}
                    break
