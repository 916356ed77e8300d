"""``exec_in_container`` with a stand-in for runc (a script that writes its pid file and
runs the command, as ``runc exec`` does inside the container): exit codes, stdin, output
bounded per stream, and a command past its timeout killed with every process it started.
The real runc is in tests/integration/agent/test_exec.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ferry.errors import RuntimeFailure
from ferry.runtime.runc_exec import descendants, exec_in_container

# Called as: runc --root R exec --pid-file P CONTAINER ARGV...
FAKE_RUNC = """#!/bin/sh
shift 2; shift 1; shift 1; echo $$ > "$1"; shift 1; shift 1
exec "$@"
"""


@pytest.fixture
def runc(tmp_path: Path) -> str:
    script = tmp_path / "runc"
    script.write_text(FAKE_RUNC)
    script.chmod(0o755)
    return str(script)


def test_output_exit_code_and_stdin(runc: str, tmp_path: Path) -> None:
    result = exec_in_container(
        runc,
        tmp_path,
        "m-1",
        ["sh", "-c", "cat; echo err >&2; exit 3"],
        stdin=b"typed\n",
        timeout=10,
        limit=1024,
    )
    assert (result.stdout, result.stderr, result.exit_code) == (b"typed\n", b"err\n", 3)
    assert not result.timed_out and not result.truncated and result.exit_signal is None


def test_output_past_the_limit_is_cut_per_stream_and_said(runc: str, tmp_path: Path) -> None:
    result = exec_in_container(
        runc,
        tmp_path,
        "m-1",
        ["sh", "-c", "head -c 300000 /dev/zero; echo short >&2"],
        timeout=10,
        limit=1000,
    )
    assert result.stdout == b"\0" * 1000
    assert result.stderr == b"short\n"
    assert result.truncated and result.exit_code == 0


def test_a_command_past_its_timeout_is_killed_with_what_it_started(
    runc: str, tmp_path: Path
) -> None:
    marker = tmp_path / "child.pid"
    started = time.monotonic()
    result = exec_in_container(
        runc,
        tmp_path,
        "m-1",
        ["sh", "-c", f"sleep 30 & echo $! > {marker}; echo before; sleep 31"],
        timeout=0.5,
        limit=1024,
    )
    assert time.monotonic() - started < 4
    assert result.timed_out and result.exit_signal == 9 and result.exit_code == 137
    assert result.stdout == b"before\n"
    child = int(marker.read_text())
    deadline = time.monotonic() + 3
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # killed; its parent (the test) reaps nothing, init reaps it
    state = (
        Path(f"/proc/{child}/stat").read_text().split()[2]
        if Path(f"/proc/{child}").exists()
        else "gone"
    )
    assert state in ("gone", "Z"), state


def test_no_runc_is_a_runtime_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match="could not start runc exec"):
        exec_in_container(str(tmp_path / "absent"), tmp_path, "m-1", ["ls"], timeout=1, limit=10)


def test_descendants_walks_the_tree_parents_first() -> None:
    parents = {10: 1, 11: 10, 12: 10, 13: 11, 20: 1}
    assert descendants(parents, 10) == [10, 11, 12, 13]
    assert descendants(parents, 99) == [99]
    assert os.getpid() in descendants({os.getpid(): 1}, os.getpid())
