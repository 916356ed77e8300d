"""The agent reports the processes of the machines that are meant to run and run, in one
request per pass, each with its instance id; nothing when no machine runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from ferry.agent.ps_report import ProcessReporter, reported_machines
from ferry.agent.reconcile import container_id
from ferry.model import DesiredState, Machine, MachineConfig, MachineState
from ferry.model.processes import MachineProcesses, ProcessStat

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SHELL = ProcessStat(
    pid=10, stime=1, rtime=2, command="sh", directory="/", cpu=0, rss=4096, listen_sockets=[]
)


def machine(mid: str, state: MachineState, desired: DesiredState) -> Machine:
    return Machine(
        id=mid,
        name=mid,
        app_name="web",
        state=state,
        desired_state=desired,
        region="ams",
        instance_id=f"i-{mid}",
        private_ip="fdaa:0:1:0:1:0:1:2",
        host_ip="10.1.0.2",
        config=MachineConfig(image="x"),
        host_id="ams-1",
        created_at=NOW,
        updated_at=NOW,
    )


RUNNING = machine("run", MachineState.STARTED, DesiredState.STARTED)
STOPPING = machine("stopping", MachineState.STARTED, DesiredState.STOPPED)
STOPPED = machine("stopped", MachineState.STOPPED, DesiredState.STOPPED)
SUSPENDED = machine("susp", MachineState.SUSPENDED, DesiredState.SUSPENDED)


class FakeSampler:
    """Every cgroup holds the one shell; records the cgroups asked for."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def sample(self, cgroups_paths: Iterable[str]) -> dict[str, list[ProcessStat]]:
        paths = list(cgroups_paths)
        self.asked.append(paths)
        return {path: [SHELL] for path in paths}


class RecordingClient:
    def __init__(self) -> None:
        self.reports: list[tuple[str, dict[str, MachineProcesses]]] = []

    def report_processes(self, host_id: str, machines: Mapping[str, MachineProcesses]) -> None:
        self.reports.append((host_id, dict(machines)))


def test_only_machines_meant_to_run_and_running_are_reported() -> None:
    assert reported_machines([RUNNING, STOPPING, STOPPED, SUSPENDED]) == [RUNNING]


def test_one_report_carries_each_running_machine_with_its_instance() -> None:
    sampler, client = FakeSampler(), RecordingClient()
    reporter = ProcessReporter(sampler, lambda cid: f"/ferry/{cid}")
    assert reporter.report([RUNNING, STOPPED], client, "ams-1") == 1  # type: ignore[arg-type]
    assert sampler.asked == [[f"/ferry/{container_id(RUNNING)}"]]
    assert client.reports == [
        ("ams-1", {"run": MachineProcesses(instance_id="i-run", processes=[SHELL])})
    ]


def test_nothing_is_sent_when_no_machine_runs() -> None:
    client = RecordingClient()
    reporter = ProcessReporter(FakeSampler(), str)
    assert reporter.report([STOPPED, SUSPENDED], client, "ams-1") == 0  # type: ignore[arg-type]
    assert client.reports == []
