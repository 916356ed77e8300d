"""The agent's pure decision: from desired machines and actual containers to steps.

``plan_host`` is a function of snapshots (plus ``now``): the desired machines
of this host as the control plane last said, the containers the driver
reports, and the agent's small per-machine memory. It returns at most one
step per machine, each with a one-line reason that the agent logs and tests
assert. Machines with a step in flight are left alone until it finishes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from ferry.model import DesiredState, Machine, MachineState, RestartPolicy
from ferry.runtime.driver import ContainerState, ContainerStatus

LABEL_MACHINE = "ferry.machine_id"
LABEL_INSTANCE = "ferry.instance_id"
LABEL_APP = "ferry.app"

RESTART_BACKOFF_START = 0.1
RESTART_BACKOFF_MAX = 10.0


def container_id(machine: Machine) -> str:
    """The container of one instance (version) of a machine."""
    return f"{machine.id}-{machine.instance_id}"


class StepKind(StrEnum):
    START = "start"  # (re)create the current instance's container and run it
    STOP = "stop"  # stop and remove the container; machine stays, stopped
    RESTART = "restart"  # stop then start the current instance (user restart)
    SIGNAL = "signal"  # deliver machine.pending_signal
    SUSPEND = "suspend"  # freeze the running container (memory kept)
    RESUME = "resume"  # thaw the frozen container of a machine wanted started
    EXITED = "exited"  # the process ended: restart by policy or report the exit
    DESTROY = "destroy"  # stop, remove container and network, report destroyed
    REMOVE_ORPHAN = "remove-orphan"  # a container no desired machine owns
    REPORT = "report"  # actual state differs from what the control plane shows


@dataclass
class MachineMemory:
    """What the agent remembers about a machine between cycles (not persisted).

    After an agent restart it is rebuilt: running containers are adopted as
    caught up with the machine's current generation.
    """

    acted_generation: int = -1
    restart_count: int = 0
    gave_up_generation: int = -1
    next_start_at: float = 0.0
    backoff: float = RESTART_BACKOFF_START
    # The state last reported and the machine's revision the report made: a
    # snapshot with an older revision was read before it and cannot show it.
    reported: tuple[int, MachineState] | None = None


@dataclass(frozen=True)
class Step:
    kind: StepKind
    machine_id: str
    reason: str
    machine: Machine | None = None
    containers: tuple[ContainerStatus, ...] = field(default_factory=tuple)
    report_state: MachineState | None = None


def should_restart(policy: RestartPolicy, exit_code: int | None, restart_count: int) -> bool:
    """Fly's restart policies: ``always``, ``on-failure`` (up to max_retries), ``no``."""
    if policy.policy == "always":
        return True
    if policy.policy == "on-failure":
        return exit_code != 0 and restart_count < policy.max_retries
    return False


def plan_host(
    desired: Sequence[Machine],
    containers: Sequence[ContainerStatus],
    memory: Mapping[str, MachineMemory],
    busy: Collection[str],
    now: float,
) -> list[Step]:
    """Steps that move this host toward ``desired``; at most one per machine."""
    by_machine: dict[str, list[ContainerStatus]] = {}
    for container in containers:
        owner = container.labels.get(LABEL_MACHINE, container.container_id.split("-")[0])
        by_machine.setdefault(owner, []).append(container)
    steps: list[Step] = []
    wanted = {m.id for m in desired}
    for machine in desired:
        if machine.id in busy:
            continue
        mem = memory.get(machine.id)
        step = _plan_machine(machine, tuple(by_machine.get(machine.id, ())), mem, now)
        if step is not None and not _reported_already(step, machine, mem):
            steps.append(step)
    for owner, owned in sorted(by_machine.items()):
        if owner not in wanted and owner not in busy:
            steps.append(
                Step(
                    StepKind.REMOVE_ORPHAN,
                    owner,
                    f"machine {owner} is not assigned to this host: removing its container",
                    containers=tuple(owned),
                )
            )
    return steps


def _reported_already(step: Step, m: Machine, mem: MachineMemory | None) -> bool:
    """A report of the state the agent last reported, planned from a snapshot read
    before that report landed: the control plane has it already."""
    if step.kind is not StepKind.REPORT or mem is None or mem.reported is None:
        return False
    revision, state = mem.reported
    return m.revision < revision and step.report_state is state


def _plan_machine(
    m: Machine, owned: tuple[ContainerStatus, ...], mem: MachineMemory | None, now: float
) -> Step | None:
    mem = mem or MachineMemory()
    current_id = container_id(m)
    current = next((c for c in owned if c.container_id == current_id), None)
    running = current is not None and current.state is ContainerState.RUNNING
    paused = current is not None and current.state is ContainerState.PAUSED
    olds = tuple(c for c in owned if c.container_id != current_id)

    if m.desired_state is DesiredState.DESTROYED:
        if owned or m.state is not MachineState.DESTROYED:
            return Step(StepKind.DESTROY, m.id, f"machine {m.id} is to be destroyed", m, owned)
        return None
    if olds:  # a suspended machine's update drops its memory: the old container stops
        return Step(
            StepKind.START if m.desired_state is DesiredState.STARTED else StepKind.STOP,
            m.id,
            f"machine {m.id} has a new version {m.instance_id}: replacing the old container",
            m,
            owned,
        )
    if m.desired_state is DesiredState.SUSPENDED:
        return _plan_suspended(m, current, owned, mem, now)
    if m.desired_state is DesiredState.STOPPED:
        if current is not None:
            why = "is running" if running else "is suspended" if paused else "has exited"
            return Step(
                StepKind.STOP, m.id, f"machine {m.id} should be stopped but {why}", m, owned
            )
        if m.state in _SHOWS_ALIVE:
            return Step(
                StepKind.REPORT,
                m.id,
                f"machine {m.id} has no process but shows {m.state.value}",
                m,
                report_state=MachineState.STOPPED,
            )
        return None
    # desired started
    if paused:
        if m.generation > mem.acted_generation and mem.acted_generation >= 0:
            return Step(StepKind.RESTART, m.id, f"machine {m.id} restart requested", m, owned)
        return Step(StepKind.RESUME, m.id, f"machine {m.id} is suspended: resuming it", m, owned)
    if m.generation > mem.acted_generation and mem.acted_generation >= 0 and running:
        if m.pending_signal:
            return Step(StepKind.SIGNAL, m.id, f"deliver {m.pending_signal} to {m.id}", m, owned)
        return Step(StepKind.RESTART, m.id, f"machine {m.id} restart requested", m, owned)
    if running:
        if m.state is not MachineState.STARTED:
            return Step(
                StepKind.REPORT,
                m.id,
                f"machine {m.id} is running but shows {m.state.value}",
                m,
                report_state=MachineState.STARTED,
            )
        return None
    if current is not None:  # exited
        if now < mem.next_start_at:
            return None
        return Step(
            StepKind.EXITED,
            m.id,
            f"machine {m.id} exited with code {current.exit_code}",
            m,
            owned,
        )
    if mem.gave_up_generation >= m.generation:
        return None
    if now < mem.next_start_at:
        return None
    return Step(StepKind.START, m.id, f"machine {m.id} should be started and is not running", m)


def _plan_suspended(
    m: Machine,
    current: ContainerStatus | None,
    owned: tuple[ContainerStatus, ...],
    mem: MachineMemory,
    now: float,
) -> Step | None:
    """Desired ``suspended``: freeze a running container; never start a missing one.

    A frozen container is left alone whatever the agent remembers, so an agent
    restarted next to a paused container reports it suspended and never
    restarts it. A process that exited, or is gone (host reboot), has lost its
    memory: the machine is reported stopped and its next start boots it afresh.
    A freeze that failed is tried again after the machine's backoff.
    """
    if current is None:
        if m.state in _SHOWS_ALIVE:
            return Step(
                StepKind.REPORT,
                m.id,
                f"machine {m.id} has no process but shows {m.state.value}",
                m,
                report_state=MachineState.STOPPED,
            )
        return None
    if current.state is ContainerState.RUNNING:
        if now < mem.next_start_at:
            return None
        return Step(
            StepKind.SUSPEND, m.id, f"machine {m.id} should be suspended but is running", m, owned
        )
    if current.state is ContainerState.PAUSED:
        if m.state is MachineState.SUSPENDED:
            return None
        return Step(
            StepKind.REPORT,
            m.id,
            f"machine {m.id} is frozen but shows {m.state.value}",
            m,
            report_state=MachineState.SUSPENDED,
        )
    return Step(
        StepKind.STOP,
        m.id,
        f"machine {m.id} should be suspended but has exited: it is stopped",
        m,
        owned,
    )


_SHOWS_ALIVE = {
    MachineState.STARTED,
    MachineState.STARTING,
    MachineState.STOPPING,
    MachineState.SUSPENDING,
    MachineState.SUSPENDED,
}
