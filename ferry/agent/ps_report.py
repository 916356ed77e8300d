"""The agent's process reports: every started machine's processes, sent to the control plane.

Every ``PS_REPORT_SECONDS`` the agent's ps thread samples the processes of each
machine that is meant to run and runs (``ProcessSampler``: the container's
cgroup and /proc, no exec) and sends them all in one request
(``POST /v1/hosts/{host}/processes``). The control plane keeps the latest list
of each machine and answers ``GET …/machines/{id}/ps`` from it, with its age.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from ferry.agent.reconcile import container_id
from ferry.client import FerryClient
from ferry.model import DesiredState, Machine, MachineState
from ferry.model.processes import MachineProcesses, ProcessStat

__all__ = ["PS_REPORT_SECONDS", "ProcessReporter", "Sampler", "reported_machines"]

#: Seconds between two process reports of a host (the freshness of ``GET …/ps``).
PS_REPORT_SECONDS = 2.0


def reported_machines(machines: Sequence[Machine]) -> list[Machine]:
    """The machines whose processes a report carries: meant to run and running. Pure."""
    return [
        m
        for m in machines
        if m.desired_state is DesiredState.STARTED and m.state is MachineState.STARTED
    ]


class Sampler(Protocol):
    """``ferry.runtime.process_sampler.ProcessSampler``'s one method."""

    def sample(self, cgroups_paths: Iterable[str]) -> dict[str, list[ProcessStat]]: ...


class ProcessReporter:
    """Samples and reports; ``cgroups_path`` maps a container id to its cgroup path."""

    def __init__(self, sampler: Sampler, cgroups_path: Callable[[str], str]) -> None:
        self.sampler = sampler
        self.cgroups_path = cgroups_path

    def collect(self, machines: Sequence[Machine]) -> dict[str, MachineProcesses]:
        """Machine id -> its processes now, for the machines ``reported_machines`` keeps."""
        chosen = reported_machines(machines)
        paths = {m.id: self.cgroups_path(container_id(m)) for m in chosen}
        sampled = self.sampler.sample(paths.values())
        return {
            m.id: MachineProcesses(instance_id=m.instance_id, processes=sampled[paths[m.id]])
            for m in chosen
        }

    def report(self, machines: Sequence[Machine], client: FerryClient, host_id: str) -> int:
        """Sample and send one report; returns how many machines it carried.

        Sends nothing when no machine runs. Raises ``FerryError`` when the control
        plane refuses or cannot be reached (the caller logs it and tries next pass).
        """
        report = self.collect(machines)
        if report:
            client.report_processes(host_id, report)
        return len(report)
