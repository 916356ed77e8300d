"""The latest process list of each machine, as its agent reported it (``GET …/ps``).

Telemetry, not desired state: kept in memory only (like the edges' traffic),
replaced by each report, lost on a control-plane restart until the next report
(agents report every ``PS_REPORT_SECONDS``, 2 s).

Freshness rule: ``GET …/ps`` answers the latest list taken of the machine's
current ``instance_id`` no more than ``MAX_AGE_SECONDS`` ago, with its age in
the ``Ferry-Ps-Age`` header. When there is none yet (just started, or the
control plane just restarted) it waits up to ``first_wait`` seconds for one;
then 503. A machine that is not ``started`` is 409: it has no processes to list.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ferry.errors import ConflictError, UnavailableError
from ferry.model import Machine, MachineState
from ferry.model.processes import ProcessReport, ProcessStat

__all__ = ["FIRST_WAIT_SECONDS", "MAX_AGE_SECONDS", "ProcessBook", "ProcessList"]

#: A list older than this is not answered (its host stopped reporting).
MAX_AGE_SECONDS = 30.0
#: How long ``GET …/ps`` waits for a first report (two report periods and some).
FIRST_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class ProcessList:
    """One machine's processes as reported, with when the plane received them."""

    instance_id: str
    processes: list[ProcessStat]
    received_at: float  # the plane's clock, seconds


class ProcessBook:
    """Thread-safe; ``clock`` gives seconds (the plane's clock, so tests can steer it)."""

    def __init__(self, clock: Callable[[], float], first_wait: float = FIRST_WAIT_SECONDS) -> None:
        self.clock = clock
        self.first_wait = first_wait
        self._lists: dict[str, ProcessList] = {}
        self._changed = threading.Condition()

    def record(self, report: ProcessReport) -> None:
        """Keep each machine's list (the caller checked the machines belong to the host).

        Drops the lists too old to be answered, so machines that are gone are forgotten.
        """
        now = self.clock()
        with self._changed:
            for machine_id, entry in report.machines.items():
                self._lists[machine_id] = ProcessList(entry.instance_id, entry.processes, now)
            stale = [k for k, v in self._lists.items() if now - v.received_at > MAX_AGE_SECONDS]
            for machine_id in stale:
                del self._lists[machine_id]
            self._changed.notify_all()

    def latest(self, machine: Machine) -> tuple[list[ProcessStat], float]:
        """The machine's processes and their age in seconds, under the freshness rule.

        Blocks up to ``first_wait`` seconds when there is no fresh list yet. Raises
        ``ConflictError`` (409) for a machine that is not started, ``UnavailableError``
        (503) when its host sent no fresh list in time.
        """
        if machine.state is not MachineState.STARTED:
            raise ConflictError(
                f"machine {machine.id} is {machine.state.value}: only a started machine "
                "has processes to list",
                hint=f"start it first (ferry machine start {machine.id})",
            )
        # Ages follow the plane's clock; the wait is real time (a test's clock may not move).
        deadline = time.monotonic() + self.first_wait
        with self._changed:
            while True:
                found = self._fresh(machine)
                if found is not None:
                    return found.processes, max(0.0, self.clock() - found.received_at)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        raise UnavailableError(
            f"host {machine.host_id} has not reported the processes of machine {machine.id} "
            f"in the last {MAX_AGE_SECONDS:g} s",
            hint="is the host's agent running? try again in a few seconds",
        )

    def _fresh(self, machine: Machine) -> ProcessList | None:
        found = self._lists.get(machine.id)
        if found is None or found.instance_id != machine.instance_id:
            return None
        if self.clock() - found.received_at > MAX_AGE_SECONDS:
            return None
        return found
