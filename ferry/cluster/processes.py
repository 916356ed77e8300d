"""Supervised child processes: start, watch, restart on crash with backoff, stop by PID."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36
BACKOFF_START = 0.5
BACKOFF_MAX = 10.0


def become_subreaper() -> None:
    """Adopt orphaned descendants (e.g. machine shims of a crashed agent) so they get reaped."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    exit_status: int | None = None
    restarts: int = 0
    backoff: float = BACKOFF_START
    next_start: float = 0.0
    started_at: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.exit_status is None else None


class ProcessGroup:
    """Keeps a set of children running. Not thread-safe: the supervisor's loop owns it."""

    def __init__(self) -> None:
        self.children: dict[str, Child] = {}

    def add(self, child: Child) -> Child:
        self.children[child.name] = child
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        with child.log_path.open("ab") as out:
            child.proc = subprocess.Popen(
                child.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **child.env},
                start_new_session=True,
            )
        child.exit_status = None
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def reap(self) -> None:
        """Collect exited children and orphans without blocking."""
        by_pid = {c.proc.pid: c for c in self.children.values() if c.proc is not None}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = by_pid.get(pid)
            if child is not None and child.exit_status is None:
                child.exit_status = os.waitstatus_to_exitcode(status)
                assert child.proc is not None
                child.proc.returncode = child.exit_status
                if time.monotonic() - child.started_at > 30:
                    child.backoff = BACKOFF_START
                child.next_start = time.monotonic() + child.backoff
                log.warning(
                    "%s exited with %s; restarting in %.1fs",
                    child.name,
                    child.exit_status,
                    child.backoff,
                )

    def restart_crashed(self) -> list[str]:
        """Restart children that exited and whose backoff elapsed; return their names."""
        now = time.monotonic()
        restarted = []
        for child in self.children.values():
            if child.exit_status is not None and now >= child.next_start:
                child.restarts += 1
                child.backoff = min(child.backoff * 2, BACKOFF_MAX)
                self._spawn(child)
                restarted.append(child.name)
        return restarted

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """SIGTERM the child (by its PID), wait, then SIGKILL. Removes it from the group."""
        child = self.children.pop(name, None)
        if child is None or child.proc is None or child.exit_status is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.proc.pid, signal.SIGTERM)
        try:
            child.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.proc.pid, signal.SIGKILL)
            child.proc.wait(5)
        except ChildProcessError:
            pass  # reaped by reap() already
        log.info("stopped %s", name)
