"""Shared fixtures of the integration tests: a real registry on loopback, root checks.

Every integration test needs root (runc, mounts, cgroups); off root they are
skipped with that reason. CI runs as root, so there they always run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .images import RunningRegistry, start_registry

NOT_ROOT_REASON = "integration tests need root (runc, overlay mounts, cgroups); run them as root"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason=NOT_ROOT_REASON))


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """One registry for the whole session, stopped by pid at the end."""
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT_REASON)
    running = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield running
    finally:
        running.stop()
