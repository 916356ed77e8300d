"""Faults for a Ferry Postgres cluster in the embedded cluster, made as a chaos tester would.

Host side, as root; used by ``tests/e2e/test_postgres_failover.py`` and
``bench/pg_failover.py``. A machine runs under runc in its own pid namespace with
Ferry's init as its pid 1 (``<home>/hosts/<host>/runtime/containers/<machine>-<instance>/pid``
holds that pid as the host sees it):

- ``kill_machine``: ``kill -9`` of that init. The kernel then kills every process
  of the namespace at once (etcd, Patroni, Postgres, the 5432 forwarder): the
  machine dies as a crashed host would, with no shutdown of anything. The agent
  sees the exit and starts the machine again by its restart policy (``always``).
- ``freeze_machine`` / ``thaw_machine``: SIGSTOP / SIGCONT every process of the
  namespace (a hung host: the agent still sees it running and does nothing).
- ``cut_region`` / ``heal_region``: nftables rules in the cluster's core namespace
  that drop everything between one region's link (``r-<code>``) and the emulated
  WAN (the TUN ``wan0`` every inter-region packet passes): the region's members can
  no longer reach the others' (their 6PN and etcd traffic alike), while its agents
  still reach the control plane (that path bypasses the WAN).
- ``Writer``: a client writing numbered rows through port 5432 in a loop from an
  app machine's network namespace (``psql`` per row, so each row is one
  connection and one acknowledged commit), remembering every acknowledged id.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ferry.client import FerryClient
from ferry.cluster.settings import ClusterSettings
from ferry.cluster.wan import TUN_NAME as WAN_TUN

__all__ = [
    "PSQL",
    "Attempt",
    "Writer",
    "cut_region",
    "freeze_machine",
    "heal_region",
    "kill_machine",
    "machine_init_pid",
    "thaw_machine",
    "writer_for_app",
]

PSQL = "/usr/lib/postgresql/15/bin/psql"
TABLE = "failover_rows"
#: A stuck attempt (a frozen primary holding the connection) is abandoned after this;
#: its row then counts as not acknowledged, which it was not.
ATTEMPT_TIMEOUT = 20.0


def machine_init_pid(settings: ClusterSettings, host_id: str, machine_id: str) -> int:
    """The host pid of the running machine's init; ``LookupError`` if it is not running."""
    containers = settings.host_dir(host_id) / "runtime" / "containers"
    for pid_file in sorted(containers.glob(f"{machine_id}-*/pid")):
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            continue  # an earlier instance's leftover, or not started yet
        if os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid"):
            return pid
    raise LookupError(f"machine {machine_id} on {host_id} has no running init")


def kill_machine(settings: ClusterSettings, host_id: str, machine_id: str) -> int:
    """``kill -9`` the machine's init (so every process in it dies); return its pid."""
    pid = machine_init_pid(settings, host_id, machine_id)
    os.kill(pid, signal.SIGKILL)
    return pid


def _namespace_pids(init: int) -> list[int]:
    namespace = os.readlink(f"/proc/{init}/ns/pid")
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    pids.append(int(entry))
            except OSError:
                continue  # it ended while we looked
    return pids


def _signal_all(init: int, signum: signal.Signals) -> int:
    # Two passes: a process forked while the first pass ran is caught by the second.
    seen: set[int] = set()
    for _ in range(2):
        for pid in _namespace_pids(init):
            if pid not in seen:
                seen.add(pid)
                # One that ended meanwhile has nothing left to stop or wake.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
    return len(seen)


def freeze_machine(settings: ClusterSettings, host_id: str, machine_id: str) -> int:
    """SIGSTOP every process of the machine; return the init's pid (for ``thaw_machine``)."""
    pid = machine_init_pid(settings, host_id, machine_id)
    _signal_all(pid, signal.SIGSTOP)
    return pid


def thaw_machine(init: int) -> None:
    """SIGCONT every process of the machine whose init is ``init``."""
    _signal_all(init, signal.SIGCONT)


def _cut_table(region: str) -> str:
    return f"ferry_cut_{region}"


def cut_region(settings: ClusterSettings, region: str) -> None:
    """Drop all traffic between ``region`` and the other regions (``heal_region`` undoes)."""
    link = f"r-{region}"
    script = (
        f"table inet {_cut_table(region)} {{\n"
        "  chain forward {\n"
        "    type filter hook forward priority -10; policy accept;\n"
        f'    iifname "{link}" oifname "{WAN_TUN}" drop\n'
        f'    iifname "{WAN_TUN}" oifname "{link}" drop\n'
        "  }\n"
        "}\n"
    )
    argv = ["ip", "netns", "exec", settings.plan.core_netns, "nft", "-f", "-"]
    subprocess.run(argv, input=script, text=True, check=True, capture_output=True)


def heal_region(settings: ClusterSettings, region: str) -> None:
    """Remove ``cut_region``'s rules (idempotent: a region not cut is left as it is)."""
    argv = ["ip", "netns", "exec", settings.plan.core_netns, "nft"]
    subprocess.run(
        [*argv, "delete", "table", "inet", _cut_table(region)], capture_output=True, check=False
    )


@dataclass(frozen=True)
class Attempt:
    """One INSERT: its row id, when it began and ended (monotonic), whether it was acked."""

    row: int
    began: float
    ended: float
    acknowledged: bool


@dataclass
class Writer:
    """Writes rows n+1, n+2, … (n: the highest id there) into ``failover_rows`` through
    ``url`` from network namespace ``netns`` (names resolved with ``resolv_conf``, as the
    machine does), until ``stop``.

    ``start`` creates the table (retrying until it can); ``attempts`` lists every INSERT;
    ``close`` (always, also on failure) removes what ``start`` put in /etc/netns.
    """

    url: str
    netns: str
    resolv_conf: Path
    attempts: list[Attempt] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _first_row: int = 1

    def _etc(self) -> Path:
        return Path("/etc/netns") / self.netns

    def psql(self, sql: str, timeout: float = ATTEMPT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """One ``psql -c`` in the namespace; a timeout is returned as exit code 124."""
        separator = "&" if "?" in self.url else "?"
        argv = ["ip", "netns", "exec", self.netns, PSQL, f"{self.url}{separator}connect_timeout=3"]
        argv += ["-v", "ON_ERROR_STOP=1", "-tAc", sql]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 124, "", "timed out")

    def start(self, table_timeout: float = 60.0) -> None:
        self._etc().mkdir(parents=True, exist_ok=True)
        shutil.copy(self.resolv_conf, self._etc() / "resolv.conf")
        create = f"create table if not exists {TABLE} (id bigint primary key, at timestamptz)"
        deadline = time.monotonic() + table_timeout
        # Rows go on from the highest id already there (an earlier writer's): every
        # INSERT is of a new id, so a failure is never a duplicate key.
        last = f"{create}; select coalesce(max(id), 0) from {TABLE}"
        while (done := self.psql(last)).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot create {TABLE}: {done.stderr.strip()}")
        self._first_row = int(done.stdout.split()[-1]) + 1
        self._thread = threading.Thread(target=self._run, name="pg-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        row = max((a.row for a in self.attempts), default=self._first_row - 1)
        while not self._stop.is_set():
            row += 1
            began = time.monotonic()
            done = self.psql(f"insert into {TABLE} values ({row}, now())")
            self.attempts.append(Attempt(row, began, time.monotonic(), done.returncode == 0))

    def stop(self) -> None:
        """End the loop (the last INSERT finishes first); ``psql`` still works after it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=ATTEMPT_TIMEOUT + 5)

    def close(self) -> None:
        """``stop``, and remove the namespace's resolv.conf this writer put in /etc/netns."""
        self.stop()
        shutil.rmtree(self._etc(), ignore_errors=True)

    def acknowledged(self) -> set[int]:
        return {a.row for a in self.attempts if a.acknowledged}

    def first_write_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` until an INSERT begun after it was acknowledged."""
        ends = [a.ended for a in self.attempts if a.acknowledged and a.began >= moment]
        return min(ends) - moment if ends else None

    def wait_for_write_after(self, moment: float, timeout: float) -> float | None:
        """Block until ``first_write_after(moment)`` is known (polls the list the writer
        thread fills; bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.first_write_after(moment)
            if found is not None:
                return found
            time.sleep(0.1)  # the writer thread appends; nothing to wait on but the list
        return None

    def rows_present(self) -> set[int]:
        """Ids in the table now (through 5432, so from the current primary)."""
        done = self.psql(f"select id from {TABLE}", timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"cannot read {TABLE}: {done.stderr.strip()}")
        return {int(line) for line in done.stdout.split()}


def writer_for_app(
    settings: ClusterSettings, client: FerryClient, app: str, timeout: float = 90
) -> Writer:
    """A ``Writer`` in the network namespace of ``app``'s started machine, with the
    ``DATABASE_URL`` that machine has (``ferry postgres attach`` rolls the app's machines
    to give it to them: this waits, at most ``timeout``, for one that has it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for machine in client.list_machines(app):
            if machine.state.value != "started":
                continue
            argv = ["/bin/busybox", "sh", "-c", "echo $DATABASE_URL"]
            answer = client.exec_machine(app, machine.id, argv, timeout=30)
            url = answer.stdout.strip()
            if answer.exit_code == 0 and url.startswith("postgres://"):
                return Writer(
                    url=url,
                    netns=f"{settings.prefix}-vm-{machine.id}",
                    resolv_conf=settings.host_dir(machine.host_id) / "resolv.conf",
                )
        time.sleep(1.0)  # the roll is in progress; the API has no event to wait on here
    raise RuntimeError(f"{app} has no started machine with DATABASE_URL in {timeout:.0f} s")
