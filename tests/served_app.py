"""The control plane's ASGI app served by uvicorn in a thread on a loopback port, for tests.

For tests that talk to the real API over HTTP without a ``ferry server``
process (``tests/server_process.py`` is the one to kill -9 and restart).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from ferry.server import create_app
from ferry.store import SqliteStore

__all__ = ["served_app", "served_control_plane"]


@contextlib.contextmanager
def served_app(app: Any) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (AssertionError if it
    does not start within 10 s)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def served_control_plane(state_dir: Path, admin_token: str, **options: Any) -> Iterator[str]:
    """A control plane over a fresh SQLite store in ``state_dir``, without its background
    loops (liveness, autoscaler) unless ``options`` say otherwise; yields its base URL."""
    store = SqliteStore(state_dir / "state.db")
    settings: dict[str, Any] = {"run_liveness": False, "run_autoscaler": False, **options}
    try:
        with served_app(create_app(store, admin_token=admin_token, **settings)) as url:
            yield url
    finally:
        store.close()
