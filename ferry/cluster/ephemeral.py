"""A throw-away embedded cluster for tests and benchmarks: unique names, free ports, cleanup."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ferry.cluster.lifecycle import cluster_down, cluster_up
from ferry.cluster.settings import ClusterSettings


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
    )
    try:
        settings = cluster_up(settings)
        yield settings
    finally:
        cluster_down(home, purge=True)
        shutil.rmtree(home, ignore_errors=True)
