"""Shared fixtures of the integration tests: a real registry on loopback, root checks.

Every integration test needs root (runc, mounts, cgroups): off root the run
stops before any test, saying so (a run that skipped them all would look green).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..server_process import plane as plane  # a control plane process, for any test
from .images import RunningRegistry, start_registry

NOT_ROOT_REASON = "integration tests need root (runc, overlay mounts, cgroups); run them as root"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    ours = [item for item in items if here in item.path.parents]
    for item in ours:
        item.add_marker(pytest.mark.integration)
    if ours and os.geteuid() != 0:
        pytest.exit(NOT_ROOT_REASON, returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """One registry for the whole session, stopped by pid at the end."""
    running = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield running
    finally:
        running.stop()
