"""The driver never shows a container exited without its exit code while the shim that
records it still lives (a loaded host's runc teardown can take longer than a moment)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.runtime.driver import ContainerState
from ferry.runtime.runc import RuncDriver


@pytest.fixture
def lingering_shim() -> Iterator[subprocess.Popen[bytes]]:
    """A live process standing in for a shim that has not written the exit code yet."""
    shim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield shim
    finally:
        shim.kill()
        shim.wait()


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_a_gone_process_is_shown_running_until_its_shim_records_the_code(
    tmp_path: Path, lingering_shim: subprocess.Popen[bytes]
) -> None:
    driver = RuncDriver(tmp_path / "state", seccomp_profile=None)
    directory = driver.containers_dir / "m1-01"
    directory.mkdir()
    (directory / "pid").write_text(str(_dead_pid()))
    (directory / "shim.pid").write_text(str(lingering_shim.pid))

    assert driver.inspect("m1-01").state is ContainerState.RUNNING  # not "exited, no code"

    (directory / "exit_code").write_text("3\n")
    ended = driver.inspect("m1-01")
    assert (ended.state, ended.exit_code) == (ContainerState.EXITED, 3)


def test_without_a_shim_the_exit_is_shown_at_once_even_without_a_code(tmp_path: Path) -> None:
    driver = RuncDriver(tmp_path / "state", seccomp_profile=None)
    directory = driver.containers_dir / "m1-01"
    directory.mkdir()
    (directory / "pid").write_text(str(_dead_pid()))
    (directory / "shim.pid").write_text(str(_dead_pid()))

    ended = driver.inspect("m1-01")
    assert (ended.state, ended.exit_code) == (ContainerState.EXITED, None)
