"""An embedded cluster for end-to-end scenarios, torn down even when a test fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster
from ferry.cluster.settings import ClusterSettings

REPO = Path(__file__).resolve().parents[2]

if os.geteuid() != 0:
    pytest.skip("end-to-end tests need root (namespaces, runc)", allow_module_level=True)


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterSettings]:
    with ephemeral_cluster(("ams", "iad", "sin")) as settings:
        yield settings


@pytest.fixture(scope="session")
def client(cluster: ClusterSettings) -> Iterator[FerryClient]:
    token = cluster.token_path.read_text().strip()
    with FerryClient(cluster.api_url, token) as c:
        yield c


def ferry(
    cluster: ClusterSettings, *args: str, cwd: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the `ferry` CLI as a user would, pointed at this cluster."""
    env = {
        **os.environ,
        "FERRY_HOME": str(cluster.home),
        "FERRY_API_URL": cluster.api_url,
        "FERRY_API_TOKEN": cluster.token_path.read_text().strip(),
    }
    return subprocess.run(
        [sys.executable, "-m", "ferry", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def demo_dir(tmp: Path) -> Path:
    """A copy of the demo app with busybox beside its Dockerfile, as `make up` makes it."""
    target = tmp / "demo"
    shutil.copytree(REPO / "demo", target)
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static is installed by `make test`"
    shutil.copy(busybox, target / "busybox")
    return target
