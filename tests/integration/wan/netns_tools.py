"""Helpers of the WAN integration tests: the forwarder, pings and servers in namespaces.

Every process started here is stopped by its PID.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ferry.cluster.wan import WanSpec, wait_forwarder_attached
from ferry.net.iproute import netns_exec_argv

TOLERANCE = 0.10


class Forwarder:
    """The forwarder as a child process (started attached), stopped by its PID."""

    def __init__(self, spec: WanSpec, log_path: Path) -> None:
        self.spec = spec
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(spec.argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_forwarder_attached(spec, timeout=10)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 5 s; returns the exit code. Idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def start_ping(netns: str, address: str, count: int = 5) -> subprocess.Popen[str]:
    argv = netns_exec_argv(netns, ["ping", "-q", "-n", "-c", str(count), "-i", "0.2", address])
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def ping_avg_ms(proc: subprocess.Popen[str]) -> float:
    """Wait for a ``start_ping`` and return its average RTT; fails the test on loss."""
    try:
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    found = re.search(r"= [\d.]+/([\d.]+)/", out)
    assert proc.returncode == 0 and found, out
    return float(found.group(1))


def assert_close(measured_ms: float, expected_ms: float, what: str) -> None:
    low, high = expected_ms * (1 - TOLERANCE), expected_ms * (1 + TOLERANCE)
    assert low <= measured_ms <= high, f"{what}: {measured_ms:.1f} ms, want {expected_ms} ±10%"


def run_server(netns: str, code: str, *args: str) -> subprocess.Popen[bytes]:
    """Run Python ``code`` with ``args`` inside ``netns`` in the background; ``stop`` it."""
    argv = netns_exec_argv(netns, [sys.executable, "-c", textwrap.dedent(code), *args])
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(5)


def wait_until_answering(netns: str, probe: list[str], timeout: float = 10.0) -> None:
    """Run ``probe`` in ``netns`` until it exits 0 (a server started and answers)."""
    deadline = time.monotonic() + timeout
    while subprocess.run(netns_exec_argv(netns, probe), capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, f"no server in {netns} answered {probe}"
        time.sleep(0.05)
