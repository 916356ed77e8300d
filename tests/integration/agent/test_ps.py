"""`GET …/machines/{id}/ps` through a real server, agent reporter, runc and /proc.

The machine runs a shell that starts ``sleep 1000`` and a busybox ``httpd``
listening on 8080 and waits. The agent's real ``ProcessReporter`` samples the
container's cgroup and /proc and sends the list; ``ps`` answers every process
with its command, directory, memory and listening socket, no older than a
report period. A stopped machine is 409. Server and agent from ``harness``.
"""

from __future__ import annotations

import time

import pytest

from ferry.agent.ps_report import ProcessReporter
from ferry.errors import ApiError
from ferry.model import MachineState
from ferry.model.processes import ProcessStat
from ferry.runtime.process_sampler import ProcessSampler
from ferry.runtime.runc import RuncDriver

from ...server_process import ServerProcess
from .harness import HOST, Agent, OneImage, create_machine, register_host

pytestmark = pytest.mark.integration

SCRIPT = "sleep 1000 & httpd -f -p 8080 & wait"


def test_ps_lists_the_machines_processes_with_their_commands_and_sockets(
    plane: ServerProcess, driver: RuncDriver, images: OneImage, busybox_reference: str
) -> None:
    reporter = ProcessReporter(ProcessSampler(), driver.cgroups_path)
    with plane.client() as client:
        register_host(client)
        client.create_app("procs")
        machine_id = create_machine(
            client, "procs", busybox_reference, SCRIPT, restart={"policy": "no"}
        )
        agent = Agent(client, driver, images)
        agent.reach(machine_id, MachineState.STARTED)

        # The shell starts its children a moment after it runs: report until both are up.
        deadline = time.monotonic() + 20
        while True:
            _, desired = client.watch_host_machines(HOST.host_id, since=0, timeout=0)
            started = time.time()
            assert reporter.report(desired, client, HOST.host_id) == 1
            processes, age = client.machine_processes("procs", machine_id)
            by_command = {p.command: p for p in processes}
            httpd = by_command.get("httpd -f -p 8080")
            if "sleep 1000" in by_command and httpd is not None and httpd.listen_sockets:
                break
            assert time.monotonic() < deadline, f"ps never showed both: {processes}"
            time.sleep(0.1)

        assert f"sh -c {SCRIPT}" in by_command, processes
        # Pids as the machine sees them: its init (tini) is 1 and started the shell.
        assert processes[0].pid == 1 and processes[0].command.endswith(f"sh -c {SCRIPT}")
        assert 1 < by_command[f"sh -c {SCRIPT}"].pid < by_command["sleep 1000"].pid
        assert age < 5.0
        sleeper = by_command["sleep 1000"]
        assert sleeper.directory == "/"
        assert sleeper.rss > 0
        assert started - 60 <= sleeper.stime <= started + 1
        assert [(s.proto, s.address) for s in httpd.listen_sockets] == [("tcp6", "[::]:8080")]
        assert sleeper.listen_sockets == []
        assert all(isinstance(p, ProcessStat) for p in processes)

        by_rss, _ = client.machine_processes("procs", machine_id, sort_by="rss", order="desc")
        assert [p.rss for p in by_rss] == sorted((p.rss for p in processes), reverse=True)

        client.stop_machine("procs", machine_id, signal="SIGKILL")
        agent.reach(machine_id, MachineState.STOPPED)
        with pytest.raises(ApiError) as refused:
            client.machine_processes("procs", machine_id)
        assert refused.value.status == 409
