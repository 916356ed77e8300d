"""Running one command inside a running container: ``runc exec``, bounded in time and output.

``runc exec`` without ``--process`` takes the process settings of the container's
own bundle (``config.json``): its environment (the app's secrets included: the
machine's owner asked), its user, working directory, capabilities, rlimits,
``no_new_privs`` and seccomp filter, and it joins all of the container's
namespaces and its cgroup (so the machine's memory and pids limits apply). runc
refuses a paused (frozen) container by itself. A machine in a user namespace with
a network namespace the host made is entered with its network namespace joined
first (``ferry.runtime.runc_enter``: runc 1.1 cannot join it after the user one).

Bounds: the command runs at most ``timeout`` seconds, after which it and every
process it started are killed (SIGKILL, found through /proc by parentage); of
stdout and of stderr the first ``limit`` bytes are kept and the rest is read and
dropped, so a chatty command can neither fill the agent's memory nor block on a
full pipe. Output written by background processes after the command itself
ended is not waited for beyond ``_DRAIN_GRACE`` seconds.

Nothing here logs: the caller logs the command's name and exit code only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ferry.errors import RuntimeFailure
from ferry.runtime.runc_enter import enter_argv

__all__ = ["CommandResult", "descendants", "exec_in_container", "kill_tree"]

#: Seconds to keep reading output after the command ended (its background children).
_DRAIN_GRACE = 1.0
#: Seconds runc gets to exit once its process was killed.
_KILL_GRACE = 5.0
_CHUNK = 65536


@dataclass(frozen=True)
class CommandResult:
    """What one command did. ``exit_signal`` is set when Ferry killed it (timeout)."""

    stdout: bytes
    stderr: bytes
    exit_code: int
    exit_signal: int | None = None
    timed_out: bool = False
    truncated: bool = False


class _BoundedReader:
    """Reads a pipe to its end on a thread, keeping the first ``limit`` bytes."""

    def __init__(self, pipe: IO[bytes], limit: int) -> None:
        self._pipe = pipe
        self._limit = limit
        self._kept = bytearray()
        self.dropped = 0
        self._thread = threading.Thread(target=self._read, name="exec-output", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        # The pipe is closed here, at its end, never under a read still blocked in it
        # (a background process of the command may hold it open past ``finish``).
        with self._pipe:
            fd = self._pipe.fileno()
            while chunk := _read_chunk(fd):
                self._take(chunk)

    def _take(self, chunk: bytes) -> None:
        room = max(self._limit - len(self._kept), 0)
        self._kept += chunk[:room]
        self.dropped += max(len(chunk) - room, 0)

    def finish(self, deadline: float) -> bytes:
        """The bytes kept, once the pipe ended or ``deadline`` (monotonic) passed."""
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        return bytes(self._kept[: self._limit])


def _read_chunk(fd: int) -> bytes:
    try:
        return os.read(fd, _CHUNK)
    except OSError:
        return b""


def _feed(pipe: IO[bytes], data: bytes) -> None:
    """Write ``data`` to the command's stdin and close it; a command that does not read
    it all (it exited) is not an error."""
    with contextlib.suppress(OSError), pipe:
        if data:
            pipe.write(data)


def descendants(parents: Mapping[int, int], root: int) -> list[int]:
    """``root`` and every process below it, given ``pid -> parent pid``. Pure; parents
    before children."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        if pid in found:
            continue
        found.append(pid)
        queue.extend(sorted(children.get(pid, [])))
    return found


def _read_parents(pids: Iterable[str]) -> dict[int, int]:
    parents: dict[int, int] = {}
    for name in pids:
        if not name.isdigit():
            continue
        try:
            text = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1].isdigit():
            parents[int(name)] = int(fields[1])
    return parents


def kill_tree(root: int) -> None:
    """SIGKILL ``root`` and its descendants, the children first found, then again until
    none is left (a dying shell's children are reparented, not killed)."""
    for _ in range(3):
        tree = descendants(_read_parents(os.listdir("/proc")), root)
        for pid in reversed(tree):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue


def exec_in_container(
    runc_binary: str,
    runc_root: Path,
    container_id: str,
    argv: list[str],
    *,
    stdin: bytes = b"",
    timeout: float,
    limit: int,
) -> CommandResult:
    """Run ``argv`` in the running container ``container_id`` and wait for it. Blocking.

    Returns the exit code runc reports (the command's own; 128+N for a signal N, as
    a shell shows it; runc's own failures, such as a program that is not there,
    exit non-zero with runc's sentence on stderr). Raises ``RuntimeFailure`` only
    when runc cannot be started at all.
    """
    with tempfile.TemporaryDirectory(prefix="ferry-exec-") as scratch:
        pid_file = Path(scratch) / "pid"
        entry = enter_argv(runc_binary, runc_root, container_id, Path(scratch))
        command = [*entry, "--pid-file", str(pid_file), container_id, *argv]
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise RuntimeFailure(f"could not start runc exec: {exc.strerror}") from exc
        assert process.stdin and process.stdout and process.stderr
        out = _BoundedReader(process.stdout, limit)
        err = _BoundedReader(process.stderr, limit)
        threading.Thread(target=_feed, args=(process.stdin, stdin), daemon=True).start()
        timed_out = False
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            text = pid_file.read_text().strip() if pid_file.exists() else ""
            if text.isdigit():
                kill_tree(int(text))
            try:
                code = process.wait(timeout=_KILL_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()  # runc itself is stuck: its process was killed already
                code = process.wait()
        deadline = time.monotonic() + _DRAIN_GRACE
        stdout, stderr = out.finish(deadline), err.finish(deadline)
    return CommandResult(
        stdout=stdout,
        stderr=stderr,
        exit_code=128 + signal.SIGKILL if timed_out else code,
        exit_signal=int(signal.SIGKILL) if timed_out else None,
        timed_out=timed_out,
        truncated=bool(out.dropped or err.dropped),
    )
