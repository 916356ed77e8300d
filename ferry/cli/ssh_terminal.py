"""The user's end of an interactive console: the local terminal joined to a WebSocket.

``run_console`` dials the control plane's console route (the user's token in the
``Authorization`` header), puts the local terminal in raw mode (restored on every way
out) and copies: keys → binary frames, binary frames → the screen, window size
changes (SIGWINCH) → ``{"resize": [cols, rows]}``. It returns the shell's exit code
from the agent's ``{"exit": N}``; an ``{"error": …}`` from the control plane becomes a
``FerryError`` with its sentence. With stdin not a terminal (a pipe), the keys are
what the pipe holds and its end is sent as Ctrl-D, so ``printf 'ls\\n' | ferry ssh
console`` runs ``ls`` and ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import termios
import threading
import tty
from types import FrameType

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from ferry.errors import ApiError, UnavailableError

__all__ = ["run_console", "terminal_size"]

_END_OF_INPUT = b"\x04"


def terminal_size() -> os.terminal_size:
    """The size of the terminal the keys come from (stdin, else stdout), else 80 x 24."""
    for stream in (sys.stdin, sys.stdout):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            return os.get_terminal_size(stream.fileno())
    return os.terminal_size((80, 24))


def run_console(url: str, headers: dict[str, str]) -> int:
    """Relay the local terminal to the console at ``url`` until it ends; the shell's exit
    code (1 when the connection ended without one). Blocking."""
    try:
        socket = connect(url, additional_headers=headers, proxy=None, max_size=None)
    except InvalidStatus as exc:
        raise ApiError(
            f"the Ferry API refused the console ({exc.response.status_code})",
            status=exc.response.status_code,
        ) from exc
    except (WebSocketException, OSError) as exc:
        raise UnavailableError(
            f"cannot open a console at {url.split('?')[0]}: {exc}",
            hint="is the cluster running? try `ferry cluster status`",
        ) from exc
    stdin = sys.stdin.fileno()
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None
    previous = signal.getsignal(signal.SIGWINCH)
    try:
        if saved is not None:
            tty.setraw(stdin)

            def resized(_signum: int, _frame: FrameType | None) -> None:
                size = terminal_size()
                with contextlib.suppress(WebSocketException, OSError):
                    socket.send(json.dumps({"resize": [size.columns, size.lines]}))

            signal.signal(signal.SIGWINCH, resized)
        threading.Thread(target=_send_keys, args=(socket, stdin), daemon=True).start()
        return _show(socket)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, previous)
        socket.close()


def _send_keys(socket: ClientConnection, stdin: int) -> None:
    with contextlib.suppress(WebSocketException, OSError):
        while chunk := os.read(stdin, 4096):
            socket.send(chunk)
        socket.send(_END_OF_INPUT)


def _show(socket: ClientConnection) -> int:
    """Terminal output to stdout until the agent's exit message; raises on an error one."""
    out = sys.stdout.fileno()
    try:
        for message in socket:
            if isinstance(message, bytes):
                os.write(out, message)
                continue
            control = json.loads(message)
            if "exit" in control:
                return int(control["exit"])
            if "error" in control:
                raise ApiError(
                    str(control["error"]),
                    status=int(control.get("status", 400)),
                    hint=control.get("hint"),
                )
    except ConnectionClosed:
        pass
    return 1
