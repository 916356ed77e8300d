"""Exec into a real machine: control plane process, the agent's real ``ExecLoop`` taking
orders over HTTP, ``runc exec`` in a busybox container in its own user namespace.

``POST …/exec`` runs ``echo`` and ``sh -c 'exit 3'`` and answers their output and exit
code; the command sees the machine's env and runs as the machine's user; stdin reaches
it; a command past its timeout is killed (408) with everything it started; a stopped
machine is 409; ``ferry ssh console -C`` prints the output and exits with the code.
"""

from __future__ import annotations

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
from ferry.errors import ApiError
from ferry.model import MachineState
from ferry.runtime.runc import RuncDriver

from ...server_process import ServerProcess
from .harness import HOST, Agent, OneImage, create_machine, register_host

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
