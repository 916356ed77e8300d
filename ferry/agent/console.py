"""The agent's side of an interactive console: a shell on a terminal in the machine,
relayed over a WebSocket the agent dials out to the control plane.

For a ``tty`` exec order the agent connects to ``WS /v1/hosts/{host}/console/{id}``
with its host credential (it never listens), allocates a pseudo-terminal of the
order's size and runs ``runc exec -t`` with that terminal as runc's stdin, stdout and
stderr: runc puts it in raw mode, makes a second terminal inside the container and
copies between the two, so the shell runs in the machine's namespaces, as its user,
with its env — as ``runc exec`` does for ``-C`` (entered as ``ferry.runtime.runc_enter``
says, for every kind of machine). Then two copies run until either
ends: terminal output → binary frames; binary frames → the terminal, and text frames
``{"resize": [cols, rows]}`` resize it (runc follows on SIGWINCH). When the shell
exits the agent sends ``{"exit": code}`` and closes; when the user hangs up the shell
and everything it started are killed.

Nothing of what flows is logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import struct
import subprocess
import tempfile
import termios
import threading
from pathlib import Path

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from ferry.model.exec import ExecOrder
from ferry.runtime.runc_enter import enter_argv
from ferry.runtime.runc_exec import kill_tree

__all__ = ["ConsoleRunner", "set_window_size", "websocket_url"]

log = logging.getLogger("ferry.agent.console")

_CHUNK = 65536


def websocket_url(api_url: str, path: str) -> str:
    """``http://h:p`` + ``/v1/…`` → ``ws://h:p/v1/…`` (``https`` → ``wss``). Pure."""
    base = api_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + path
    return "ws://" + base.removeprefix("http://") + path


def set_window_size(fd: int, cols: int, rows: int) -> None:
    """Set the terminal behind ``fd`` to ``cols`` x ``rows``."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class ConsoleRunner:
    """Runs consoles for one host; ``serve(order)`` blocks until that console ends."""

    def __init__(
        self, api_url: str, token: str, host_id: str, runc_binary: str, runc_root: Path
    ) -> None:
        self.api_url = api_url
        self.token = token
        self.host_id = host_id
        self.runc_binary = runc_binary
        self.runc_root = runc_root

    def serve(self, order: ExecOrder) -> int | None:
        """Dial the relay, run the shell, relay until it ends; its exit code (``None`` when
        the user hung up first). Raises ``WebSocketException``/``OSError`` when the relay
        cannot be reached (the user then sees the control plane's timeout)."""
        url = websocket_url(self.api_url, f"/v1/hosts/{self.host_id}/console/{order.id}")
        headers = {"Authorization": f"Bearer {self.token}"}
        with connect(url, additional_headers=headers, proxy=None, max_size=None) as socket:
            return self._run(order, socket)

    def _run(self, order: ExecOrder, socket: ClientConnection) -> int | None:
        master, slave = os.openpty()
        set_window_size(slave, order.cols, order.rows)
        with tempfile.TemporaryDirectory(prefix="ferry-console-") as scratch:
            pid_file = Path(scratch) / "pid"
            container_id = f"{order.machine_id}-{order.instance_id}"
            argv = enter_argv(self.runc_binary, self.runc_root, container_id, Path(scratch))
            argv += ["-t", "--pid-file", str(pid_file), container_id]
            try:
                process = subprocess.Popen(
                    [*argv, *order.argv],
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    start_new_session=True,
                    close_fds=True,
                )
            finally:
                os.close(slave)
            hung_up = threading.Event()
            inbound = threading.Thread(
                target=self._keys, args=(socket, master, process, pid_file, hung_up), daemon=True
            )
            inbound.start()
            self._screen(socket, master)
            code: int | None = process.wait()
            os.close(master)
            if hung_up.is_set():
                code = None
        if code is not None:
            with contextlib.suppress(WebSocketException, OSError):
                socket.send(json.dumps({"exit": code}))
        return code

    def _screen(self, socket: ClientConnection, master: int) -> None:
        """Terminal output to the user until the terminal closes (the shell and runc ended)
        or the user hung up."""
        while True:
            try:
                chunk = os.read(master, _CHUNK)
            except OSError:  # EIO: every process holding the terminal is gone
                return
            if not chunk:
                return
            try:
                socket.send(chunk)
            except (WebSocketException, OSError):
                return

    def _keys(
        self,
        socket: ClientConnection,
        master: int,
        process: subprocess.Popen[bytes],
        pid_file: Path,
        hung_up: threading.Event,
    ) -> None:
        """The user's keys and resizes to the terminal until the user hangs up."""
        try:
            for message in socket:
                if isinstance(message, bytes):
                    os.write(master, message)
                    continue
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    cols, rows = json.loads(message)["resize"]
                    set_window_size(master, int(cols), int(rows))
                    process.send_signal(signal.SIGWINCH)
        except (WebSocketException, OSError):
            pass
        if process.poll() is None:
            # The user hung up: end the shell and all it started, so the terminal closes
            # and ``_screen`` returns.
            hung_up.set()
            text = pid_file.read_text().strip() if pid_file.exists() else ""
            if text.isdigit():
                kill_tree(int(text))
            with contextlib.suppress(ProcessLookupError):
                process.kill()
