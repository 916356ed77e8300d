"""A throw-away embedded cluster for tests and benchmarks: unique names, free ports, cleanup."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ferry.cluster.lifecycle import cluster_down, cluster_up
from ferry.cluster.settings import ClusterSettings
from ferry.errors import ConfigError


def free_port() -> int:
    """A TCP port nothing listens on right now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def ephemeral_cluster(
    regions: tuple[str, ...] = ("ams", "iad", "sin"),
    hosts_per_region: int = 1,
    *,
    octet: int = 180,
    remote_hosts: tuple[str, ...] = (),
) -> Iterator[ClusterSettings]:
    """Start a cluster under a fresh temporary home; always stop and purge it on exit."""
    home = Path(tempfile.mkdtemp(prefix="ferry-"))
    settings = ClusterSettings(
        home=home,
        regions=regions,
        hosts_per_region=hosts_per_region,
        api_port=free_port(),
        registry_port=free_port(),
        prefix=f"ft{secrets.token_hex(2)}",
        octet=octet,
        remote_hosts=remote_hosts,
    )
    try:
        settings = cluster_up(settings)
        yield settings
    finally:
        cluster_down(home, purge=True)
        shutil.rmtree(home, ignore_errors=True)


DEMO_APP = Path(__file__).resolve().parents[2] / "demo"


def run_cli(
    settings: ClusterSettings,
    *args: str,
    cwd: Path | None = None,
    timeout: float = 300,
    token: str | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the ``ferry`` CLI as a user would, pointed at this cluster. Never raises on exit code.

    ``token`` is the user's (``FERRY_API_TOKEN``; default: the cluster's admin token);
    ``stdin`` is what the user types or pipes in.
    """
    env = {
        **os.environ,
        "FERRY_HOME": str(settings.home),
        "FERRY_API_URL": settings.api_url,
        "FERRY_API_TOKEN": token or settings.token_path.read_text().strip(),
    }
    return subprocess.run(
        [sys.executable, "-m", "ferry", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def copy_demo_app(parent: Path) -> Path:
    """A copy of the demo app in ``parent/demo`` with busybox beside its Dockerfile,
    as ``make up`` makes it. Raises ``ConfigError`` when busybox is not installed."""
    target = parent / "demo"
    shutil.copytree(DEMO_APP, target)
    busybox = shutil.which("busybox")
    if busybox is None:
        raise ConfigError("busybox is missing", hint="run `make up` or `make test` to install it")
    shutil.copy(busybox, target / "busybox")
    return target
