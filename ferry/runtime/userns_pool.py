"""Helper processes that each hold a fresh, still unmapped user namespace, made ahead.

An idmapped mount needs a user namespace with the machine's mapping, and only
a process can create one: ``unshare --user cat``. Spawning it (two execs) costs
2-8 ms, so a few are kept ready, as the network namespaces are
(``ferry.net.netns_pool``): a start takes one, writes its maps (microseconds),
and a background thread makes the next. When none is ready, one is made on the
spot. A helper is harmless while it waits: an unprivileged ``cat`` of a pipe
only its parent writes, in a namespace with no ids mapped; it ends when the
pipe closes (also when the agent dies).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time

from ferry.errors import RuntimeFailure

__all__ = ["UsernsHelpers", "end_helper", "spawn_helper"]

_HELPER_TIMEOUT = 10.0
_ARGV = ("unshare", "--user", "--", "cat")


def spawn_helper() -> subprocess.Popen[bytes]:
    """A ``cat`` that has unshared its user namespace (it echoed a line back). Blocking.

    Raises ``RuntimeFailure`` when it cannot start or ends at once (user namespaces
    disabled).
    """
    try:
        helper = subprocess.Popen(
            _ARGV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except OSError as exc:
        raise RuntimeFailure(f"cannot start the user namespace helper: {exc}") from exc
    assert helper.stdin is not None and helper.stdout is not None
    try:
        helper.stdin.write(b"ready\n")
        helper.stdin.flush()
        answer = helper.stdout.readline()
    except OSError:
        answer = b""
    if answer != b"ready\n":
        end_helper(helper)
        raise RuntimeFailure(
            "the user namespace helper (`unshare --user cat`) ended at once",
            hint="the kernel must allow user namespaces (user.max_user_namespaces > 0)",
        )
    return helper


def end_helper(helper: subprocess.Popen[bytes]) -> None:
    """Close its stdin (it exits) and reap it. Idempotent; never raises."""
    if helper.stdin is not None:
        with contextlib.suppress(OSError):
            helper.stdin.close()
    try:
        helper.wait(timeout=_HELPER_TIMEOUT)
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.wait()
    if helper.stdout is not None:
        helper.stdout.close()


class UsernsHelpers:
    """Keeps ``size`` helpers ready. Thread-safe.

    ``take`` hands one out; ``done`` gives it back to be ended. Both leave the
    slow parts (reaping, spawning the next) to a background thread, so the
    caller's path costs no exec and no wait.
    """

    def __init__(self, size: int = 2, refill_delay: float = 0.2) -> None:
        self.size = size
        self.refill_delay = refill_delay
        self._ready: list[subprocess.Popen[bytes]] = []
        self._used: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._working = False

    def take(self) -> subprocess.Popen[bytes]:
        """A ready helper (made now if none is). Raises ``RuntimeFailure``."""
        while True:
            with self._lock:
                helper = self._ready.pop() if self._ready else None
            if helper is None:
                return spawn_helper()
            if helper.poll() is None:
                return helper
            end_helper(helper)  # died while waiting: take the next

    def done(self, helper: subprocess.Popen[bytes]) -> None:
        """The caller is finished with ``helper``: it is told to exit now and reaped,
        and a new one made, in the background. Never raises."""
        if helper.stdin is not None:
            with contextlib.suppress(OSError):
                helper.stdin.close()
        with self._lock:
            self._used.append(helper)
            if self._working:
                return
            self._working = True
        threading.Thread(target=self._work, name="userns-helpers", daemon=True).start()

    def drain(self) -> None:
        """End every ready helper."""
        with self._lock:
            ready, self._ready = self._ready, []
        for helper in ready:
            end_helper(helper)

    def _work(self) -> None:
        # Give the start that took the helper the CPU first: its runc is running now.
        time.sleep(self.refill_delay)
        try:
            while True:
                with self._lock:
                    used, self._used = self._used, []
                    missing = self.size - len(self._ready)
                for helper in used:
                    end_helper(helper)
                if missing <= 0:
                    break
                try:
                    made = spawn_helper()
                except RuntimeFailure:
                    break  # the next take makes one itself and says why
                with self._lock:
                    self._ready.append(made)
        finally:
            with self._lock:
                self._working = False
