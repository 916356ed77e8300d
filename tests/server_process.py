"""A ``ferry server`` process on loopback, for tests that kill it (-9) and start it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ferry.client import FerryClient

from .integration.images import free_loopback_port

__all__ = ["ServerProcess", "plane"]


class ServerProcess:
    """A ``ferry server`` process on loopback over a state.db under ``home``.

    The port is chosen once: a restarted server answers at the same ``url``.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server; return once it answers ``/healthz`` (AssertionError after 20 s)."""
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
        """SIGKILL the server if it runs (nothing is flushed or closed); idempotent."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self) -> int:
        """SIGTERM the server, as an operator stops it; its exit code (within 15 s)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)

    @property
    def token_file(self) -> Path:
        return self.home / "server" / "admin-token"

    @property
    def token(self) -> str:
        """The admin token the server wrote under its home."""
        return self.token_file.read_text().strip()

    def client(self) -> FerryClient:
        return FerryClient(self.url, self.token, timeout=10)

    def http(self, timeout: float = 5) -> httpx.Client:
        """A plain HTTP client of the API, sending the admin token."""
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ServerProcess]:
    """A started control plane under ``tmp_path/home``; SIGKILLed at the end."""
    running = ServerProcess(tmp_path / "home")
    running.start()
    try:
        yield running
    finally:
        running.kill_9()
