"""Run as a non-root user, the lanes that hold integration or e2e tests fail, saying
root is needed, instead of passing with every such test skipped. The unit lane is
allowed. (This test runs as root and drops to ``nobody`` with ``setpriv``.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp"}
    return subprocess.run(
        [*AS_NOBODY, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("lane", ["all", "integration", "e2e"])
def test_a_lane_with_root_only_tests_fails_at_once_for_a_non_root_user(lane: str) -> None:
    run = as_nobody("bash", "scripts/run-tests.sh", lane)
    assert run.returncode == 1
    assert "tests need root" in run.stderr
    assert "passed" not in run.stdout  # stopped before pytest ran anything


def test_make_test_says_root_is_needed_before_building() -> None:
    run = as_nobody("make", "--no-print-directory", "need-root")
    assert run.returncode != 0
    assert "tests need root" in run.stderr


def test_the_unit_lane_may_run_as_anyone() -> None:
    assert as_nobody("bash", "scripts/run-tests.sh", "--need-root", "unit").returncode == 0


@pytest.mark.parametrize("suite", ["tests/integration/net/test_probe.py", "tests/e2e"])
def test_pytest_on_root_only_tests_stops_instead_of_skipping(suite: str) -> None:
    run = as_nobody(".venv/bin/pytest", "-p", "no:cacheprovider", "-q", suite)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert "need root" in run.stdout + run.stderr
    assert "skipped" not in run.stdout and "passed" not in run.stdout
