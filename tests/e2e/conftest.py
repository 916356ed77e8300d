"""An embedded cluster for end-to-end scenarios, torn down even when a test fails."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry.client import FerryClient
from ferry.cluster.ephemeral import copy_demo_app, ephemeral_cluster, run_cli
from ferry.cluster.settings import ClusterSettings
from ferry.errors import ApiError
from ferry.model import Machine, MachineState

REPO = Path(__file__).resolve().parents[2]

NOT_ROOT_REASON = "end-to-end tests need root (namespaces, runc); run them as root"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Off root, stop before any test, saying so: a run that skipped them would look green."""
    here = Path(__file__).parent
    if os.geteuid() != 0 and any(here in item.path.parents for item in items):
        pytest.exit(NOT_ROOT_REASON, returncode=pytest.ExitCode.USAGE_ERROR)


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
    cluster: ClusterSettings,
    *args: str,
    cwd: Path | None = None,
    timeout: float = 180,
    token: str | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the `ferry` CLI as a user would, pointed at this cluster (as the operator
    unless ``token`` is given)."""
    return run_cli(cluster, *args, cwd=cwd, timeout=timeout, token=token, stdin=stdin)


def ferry_ok(cluster: ClusterSettings, *args: str, cwd: Path | None = None) -> Any:
    """``ferry`` that must succeed: the test fails with the CLI's output otherwise."""
    done = run_cli(cluster, *args, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def until(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    """Call ``probe`` (a CLI or network round trip each: no sleep needed) until it is
    truthy; return that value, or fail naming ``what`` and the last answer."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")


def demo_dir(tmp: Path) -> Path:
    """A copy of the demo app with busybox beside its Dockerfile, as `make up` makes it."""
    return copy_demo_app(tmp)


def cluster_pid(cluster: ClusterSettings, role: str, *words: str) -> int | None:
    """PID of this cluster's ``ferry <role>`` process whose arguments include ``words``
    one after the other (e.g. ``"--region", "iad"``)."""
    needle = " ".join(words)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = [
                a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0")
            ]
        except OSError:
            continue
        line = " ".join(args)
        if args[0] != "nsenter" and role in args and str(cluster.home) in line and needle in line:
            return int(proc.name)
    return None


@pytest.fixture(scope="module", autouse=True)
def apps_of_the_module_are_deleted(client: FerryClient) -> Iterator[None]:
    """Each test module leaves the shared cluster as it found it: the apps it created are
    deleted (their machines destroyed) when it ends, so later modules find the hosts' room
    free. Without this, a region's host fills up and placements fall back to other regions."""
    before = {app.name for app in client.list_apps()}
    yield
    created = [app.name for app in client.list_apps() if app.name not in before]
    for name in created:
        client.delete_app(name, force=True)
    deadline = time.monotonic() + 60
    while created and time.monotonic() < deadline:
        remaining = {m.app_name for name in created for m in _live_machines(client, name)}
        if not remaining:
            return
        time.sleep(0.2)  # polling the API for the destroys; bounded by the deadline
    left = {name: len(_live_machines(client, name)) for name in created}
    assert not any(left.values()), f"apps still had machines 60 s after deletion: {left}"


def _live_machines(client: FerryClient, app: str) -> list[Machine]:
    try:
        return [m for m in client.list_machines(app) if m.state is not MachineState.DESTROYED]
    except ApiError as exc:
        if exc.status == 404:
            return []
        raise
