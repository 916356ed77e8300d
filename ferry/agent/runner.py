"""Carries out the reconcile steps on this host: image, network, container, report.

Each step runs on a worker thread; one step per machine at a time (the loop
marks the machine busy). Every outcome, good or bad, is reported to the
control plane as a state and an event, so the user sees why.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ferry.agent.network_hook import MachineNetwork
from ferry.agent.reconcile import (
    LABEL_APP,
    LABEL_INSTANCE,
    LABEL_MACHINE,
    RESTART_BACKOFF_MAX,
    MachineMemory,
    Step,
    StepKind,
    container_id,
    should_restart,
)
from ferry.errors import FerryError, RuntimeFailure, UnavailableError
from ferry.model import Machine, MachineState
from ferry.runtime.driver import (
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    Driver,
    ImageStore,
)
from ferry.runtime.process import merge_env, resolve_process
from ferry.runtime.userns import IdRangeAllocator, range_owner

log = logging.getLogger(__name__)

_LIVE = (ContainerState.RUNNING, ContainerState.PAUSED)  # a process exists (maybe frozen)

_tini = shutil.which("tini-static")
INIT_BINARY = Path(_tini) if _tini else None


class StatusReporter(Protocol):
    """The one call the runner makes to the control plane (``FerryClient.report_status``)."""

    def report_status(
        self,
        host_id: str,
        machine_id: str,
        state: str,
        instance_id: str,
        event_type: str,
        event_status: str,
        reason: str | None = None,
        exit_code: int | None = None,
        restart_count: int | None = None,
    ) -> object: ...


class SecretsSource(Protocol):
    """Where a starting container's secrets come from (``FerryClient.machine_secrets``)."""

    def machine_secrets(self, host_id: str, machine_id: str) -> dict[str, str]: ...


class VolumeSource(Protocol):
    """Where a starting machine's volumes are mounted on the host
    (``ferry.agent.volume_loop.VolumeKeeper``)."""

    def source_for(self, volume_id: str) -> Path: ...


@dataclass(frozen=True)
class HostIdentity:
    host_id: str
    region: str


class StepRunner:
    """Executes ``Step``s. Thread-safe across machines; never raises (failures are reported)."""

    def __init__(
        self,
        host: HostIdentity,
        driver: Driver,
        images: ImageStore,
        network: MachineNetwork,
        reporter: StatusReporter,
        memory: dict[str, MachineMemory],
        clock: Callable[[], float] = time.monotonic,
        before_destroy: Callable[[Machine, str], None] | None = None,
        secrets: SecretsSource | None = None,
        id_ranges: IdRangeAllocator | None = None,
        readonly_root: bool = False,
        volumes: VolumeSource | None = None,
    ) -> None:
        """``id_ranges``: each machine runs in its own user namespace, root inside
        mapped to the host uid range it holds there (kept across its restarts,
        freed when it is destroyed); ``None``: in the host's, as root.
        ``readonly_root``: machines get a read-only root filesystem. ``volumes``:
        where a machine's ``config.mounts`` come from (``None``: the host keeps no volumes,
        and a machine with one fails to start, saying so)."""
        self.volumes = volumes
        self.host = host
        # Asked for the app's secrets at every container start (None: machines get none).
        # The last answer per machine is kept in memory only, to restart a crashed
        # process while the control plane is unreachable.
        self.secrets = secrets
        self._last_secrets: dict[str, dict[str, str]] = {}
        self.id_ranges = id_ranges
        self.readonly_root = readonly_root
        # Called with (machine, container id) after a container stops and before its
        # directory (and so its log) is removed: the last output still gets shipped.
        self.before_destroy = before_destroy
        self.driver = driver
        self.images = images
        self.network = network
        self.reporter = reporter
        self.memory = memory
        self.clock = clock
        self._lock = threading.Lock()

    def mem(self, machine_id: str) -> MachineMemory:
        with self._lock:
            return self.memory.setdefault(machine_id, MachineMemory())

    def run(self, step: Step) -> None:
        """Carry out ``step``; log and report failures instead of raising."""
        try:
            handler = getattr(self, f"_do_{step.kind.value.replace('-', '_')}")
            handler(step)
        except FerryError as exc:
            log.warning("step %s for %s failed: %s", step.kind.value, step.machine_id, exc)
            if step.machine is not None and step.kind is not StepKind.DESTROY:
                self._give_up(step.machine, "launch", f"failed: {exc}", None)
        except Exception:
            log.exception("step %s for %s crashed", step.kind.value, step.machine_id)

    # -- steps -------------------------------------------------------------

    def _do_start(self, step: Step) -> None:
        m = _need(step)
        for old in step.containers:
            self._remove_container(m, old)
        self._start(m, event_type="start")

    def _do_restart(self, step: Step) -> None:
        m = _need(step)
        for c in step.containers:
            self._stop_container(m, c)
        self.mem(m.id).restart_count = 0
        self._start(m, event_type="restart")

    def _do_signal(self, step: Step) -> None:
        m = _need(step)
        assert m.pending_signal is not None
        self.driver.signal(container_id(m), m.pending_signal)
        self.mem(m.id).acted_generation = m.generation
        self._report(m, MachineState.STARTED, "signal", m.pending_signal)

    def _do_suspend(self, step: Step) -> None:
        """Freeze; if the freeze fails the process keeps running, the machine is reported
        ``started`` with the reason, and the freeze is tried again after a backoff."""
        m = _need(step)
        mem = self.mem(m.id)
        self._report(m, MachineState.SUSPENDING, "suspend", "suspending")
        began = self.clock()
        try:
            self.driver.pause(container_id(m))
        except RuntimeFailure as exc:
            mem.next_start_at = self.clock() + mem.backoff
            mem.backoff = min(mem.backoff * 2, RESTART_BACKOFF_MAX)
            log.warning("could not suspend %s: %s", m.id, exc)
            self._report(m, MachineState.STARTED, "suspend", "failed", reason=str(exc))
            return
        mem.acted_generation = m.generation
        log.info("machine %s suspended in %.0f ms", m.id, (self.clock() - began) * 1000)
        self._report(m, MachineState.SUSPENDED, "suspend", "suspended")

    def _do_resume(self, step: Step) -> None:
        """Thaw and report ``started`` at once: the process never stopped, so there
        is no ``starting`` to show (and no round trip to wait for)."""
        m = _need(step)
        began = self.clock()
        self.driver.resume(container_id(m))
        mem = self.mem(m.id)
        mem.acted_generation = m.generation
        mem.next_start_at = 0.0
        log.info("machine %s resumed in %.1f ms", m.id, (self.clock() - began) * 1000)
        self._report(m, MachineState.STARTED, "start", "resumed")

    def _do_stop(self, step: Step) -> None:
        m = _need(step)
        exit_code = None
        if any(c.state in _LIVE for c in step.containers):
            stop = m.effective_stop
            why = f"sending {stop.signal}"
            if stop.signal != "SIGKILL":
                why += f", SIGKILL after {stop.timeout}"
            self._report(m, MachineState.STOPPING, "stop", "stopping", reason=why)
        for c in step.containers:
            exit_code = self._stop_container(m, c)
        if m.state not in (MachineState.STOPPED, MachineState.FAILED):
            self._report(m, MachineState.STOPPED, "stop", "stopped", exit_code=exit_code)

    def _do_exited(self, step: Step) -> None:
        m = _need(step)
        current = next(c for c in step.containers if c.container_id == container_id(m))
        mem = self.mem(m.id)
        code = current.exit_code
        if should_restart(m.config.restart, code, mem.restart_count):
            mem.restart_count += 1
            self._remove_container(m, current)
            log.info("restarting %s by policy %s (exit %s)", m.id, m.config.restart.policy, code)
            self._start(m, event_type="restart", exit_code=code)
            return
        self._remove_container(m, current)
        reason = f"exited with code {code}; restart policy {m.config.restart.policy} gives up"
        self._give_up(m, "exit", reason, code)

    def _do_destroy(self, step: Step) -> None:
        m = _need(step)
        if step.containers:
            # Only with something to stop: a second pass over an already destroyed machine
            # (a stale snapshot) must not make it "destroying" again, which would hold its
            # address as taken and fail a create that was just given it.
            self._report(m, MachineState.DESTROYING, "destroy", "destroying")
        for c in step.containers:
            self._stop_container(m, c)
        self.network.remove(m.id, m.private_ip)
        if self.id_ranges is not None:
            self.id_ranges.release(range_owner(self.host.host_id, m.id))
        with self._lock:
            self.memory.pop(m.id, None)
            self._last_secrets.pop(m.id, None)
        self._report(m, MachineState.DESTROYED, "destroy", "destroyed")

    def _do_remove_orphan(self, step: Step) -> None:
        for c in step.containers:
            if c.state in _LIVE:
                self.driver.stop(c.container_id, "SIGKILL", 0)
            self.driver.destroy(c.container_id)
        self.network.remove(step.machine_id)
        if self.id_ranges is not None:
            self.id_ranges.release(range_owner(self.host.host_id, step.machine_id))

    def _do_report(self, step: Step) -> None:
        m = _need(step)
        assert step.report_state is not None
        if step.report_state is MachineState.STARTED:
            self.mem(m.id).acted_generation = m.generation
        self._report(m, step.report_state, "update", step.report_state.value)

    # -- pieces ------------------------------------------------------------

    def _start(self, m: Machine, *, event_type: str, exit_code: int | None = None) -> None:
        mem = self.mem(m.id)
        started = self.clock()
        # "starting" travels to the control plane while the container is prepared
        # (a round trip the start need not wait for); "started" or a failure is
        # reported only after it, so the two never arrive out of order.
        starting = threading.Thread(
            target=self._report,
            args=(m, MachineState.STARTING, event_type, "starting"),
            name=f"report-{m.id}",
            daemon=True,
        )
        starting.start()
        phases = StartPhases()
        try:
            self._start_container(m, phases)
        finally:
            waited = self.clock()
            starting.join()
            phases.add("starting-report", self.clock() - waited)
        mem.acted_generation = m.generation
        mem.next_start_at = 0.0
        took = self.clock() - started
        log.info(
            "machine %s started in %.1f ms (%s; %s; began at %.6f)",
            m.id,
            took * 1000,
            event_type,
            phases.describe(),
            time.time() - took,
        )
        self._report(m, MachineState.STARTED, event_type, "started", exit_code=exit_code)

    def _start_container(self, m: Machine, phases: StartPhases) -> None:
        """Image, network namespace and container of ``m``'s current instance."""
        mark = self.clock()
        # The secrets' round trip to the control plane overlaps the image and network.
        fetching = None if self.secrets is None else _Fetch(self._fetch_secrets, m)
        image = self.images.ensure(m.config.image)
        mark = phases.lap("image", mark, self.clock())
        netns = self.network.ensure(m.id, m.host_ip, m.private_ip)
        mark = phases.lap("network", mark, self.clock())
        volumes = tuple(
            (mount.path, self._volume_source(mount.volume)) for mount in m.config.mounts
        )
        if volumes:
            mark = phases.lap("volumes", mark, self.clock())
        secrets = {} if fetching is None else fetching.result()
        if fetching is not None:
            mark = phases.lap("secrets", mark, self.clock())  # the wait beyond the network
        guest = m.config.effective_guest
        env = merge_env(image.config.env, self._machine_env(m, secrets))
        spec = ContainerSpec(
            container_id=container_id(m),
            image=image,
            process_args=resolve_process(image.config, m.config.init),
            env=env,
            working_dir=image.config.working_dir or "/",
            hostname=m.id,
            private_ip=m.private_ip,
            cpus=float(guest.cpus),
            cpu_shares=1024 * guest.cpus if guest.cpu_kind == "performance" else 64 * guest.cpus,
            memory_mb=guest.memory_mb,
            netns_path=netns,
            labels={LABEL_MACHINE: m.id, LABEL_INSTANCE: m.instance_id, LABEL_APP: m.app_name},
            init_binary=INIT_BINARY,
            files=tuple((f.guest_path, f.content) for f in m.config.files),
            id_range=None
            if self.id_ranges is None
            else self.id_ranges.acquire(range_owner(self.host.host_id, m.id)),
            readonly_root=self.readonly_root,
            volumes=volumes,
        )
        self.driver.destroy(spec.container_id)  # a half-made container from a crash mid-start
        mark = phases.lap("spec", mark, self.clock())
        self.driver.start(spec)
        phases.lap("container", mark, self.clock())

    def _volume_source(self, volume_id: str) -> Path:
        if self.volumes is None:
            raise RuntimeFailure(
                f"this host's agent keeps no volumes, so volume {volume_id} cannot be mounted",
                hint="run the agent with volumes (its default)",
            )
        return self.volumes.source_for(volume_id)

    def _fetch_secrets(self, m: Machine) -> dict[str, str]:
        """The app's secrets now; the last ones fetched for ``m`` if the control plane is
        unreachable (``UnavailableError`` when there are none). Values are never logged."""
        if self.secrets is None:
            return {}
        try:
            found = self.secrets.machine_secrets(self.host.host_id, m.id)
        except UnavailableError:
            with self._lock:
                last = self._last_secrets.get(m.id)
            if last is None:
                raise
            log.warning("control plane unreachable: %s starts with its last known secrets", m.id)
            return last
        with self._lock:
            self._last_secrets[m.id] = found
        return found

    def _machine_env(self, m: Machine, secrets: dict[str, str] | None = None) -> dict[str, str]:
        """The config's ``env``, overridden by the app's secrets (as on Fly), overridden by
        the platform's ``FLY_*`` variables (which no secret may be named)."""
        env = dict(m.config.env)
        env.update(secrets or {})
        env.update(
            {
                "FLY_APP_NAME": m.app_name,
                "FLY_MACHINE_ID": m.id,
                "FLY_ALLOC_ID": m.id,
                "FLY_REGION": m.region,
                "FLY_PRIVATE_IP": m.private_ip,
                "FLY_MACHINE_VERSION": m.instance_id,
                "FLY_IMAGE_REF": m.config.image,
                "FLY_PROCESS_GROUP": m.config.metadata.get("fly_process_group", "app"),
                "FLY_VM_MEMORY_MB": str(m.config.effective_guest.memory_mb),
                "FLY_HOST_ID": self.host.host_id,
            }
        )
        env.setdefault("PRIMARY_REGION", m.region)
        return env

    def _stop_container(self, m: Machine, c: ContainerStatus) -> int | None:
        """Stop (if running) and remove ``c``; return its exit code when known.

        Stops by ``m.effective_stop``: the signal and timeout of the user's
        stop request when it gave them, else the config's ``stop_config``.
        """
        status = c
        if c.state in _LIVE:  # the driver thaws a paused one first
            stop = m.effective_stop
            log.info(
                "stopping %s with %s, SIGKILL after %s%s",
                c.container_id,
                stop.signal,
                stop.timeout,
                " (as the stop request asked)" if m.stop_override is not None else "",
            )
            status = self.driver.stop(c.container_id, stop.signal, stop.timeout_seconds)
        if self.before_destroy is not None:
            self.before_destroy(m, c.container_id)
        self.driver.destroy(c.container_id)
        return status.exit_code

    def _remove_container(self, m: Machine, c: ContainerStatus) -> None:
        self._stop_container(m, c)

    def _give_up(self, m: Machine, event_type: str, reason: str, exit_code: int | None) -> None:
        mem = self.mem(m.id)
        mem.gave_up_generation = m.generation
        mem.acted_generation = m.generation
        mem.backoff = min(mem.backoff * 2, RESTART_BACKOFF_MAX)
        state = MachineState.STOPPED if exit_code == 0 else MachineState.FAILED
        self._report(m, state, event_type, state.value, reason=reason, exit_code=exit_code)

    def _report(
        self,
        m: Machine,
        state: MachineState,
        event_type: str,
        event_status: str,
        *,
        reason: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        try:
            updated = self.reporter.report_status(
                self.host.host_id,
                m.id,
                state.value,
                m.instance_id,
                event_type,
                event_status,
                reason=reason,
                exit_code=exit_code,
                restart_count=self.mem(m.id).restart_count,
            )
            if isinstance(updated, Machine):  # a snapshot older than it must not re-report
                self.mem(m.id).reported = (updated.revision, state)
        except FerryError as exc:
            # The next cycle sees the mismatch again and re-reports: nothing is lost.
            log.warning("could not report %s %s: %s", m.id, state.value, exc)


class StartPhases:
    """Where one start's time went, phase by phase, for the agent's log line."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def lap(self, phase: str, since: float, now: float) -> float:
        """Record ``now - since`` for ``phase``; return ``now`` (the next phase's start)."""
        self.add(phase, now - since)
        return now

    def describe(self) -> str:
        """``image 0.3 ms, network 8.1 ms, …`` in the order the phases ran."""
        return ", ".join(f"{name} {s * 1000:.1f} ms" for name, s in self.seconds.items())


class _Fetch:
    """``fetch(machine)`` on a thread of its own; ``result()`` joins it and re-raises."""

    def __init__(self, fetch: Callable[[Machine], dict[str, str]], machine: Machine) -> None:
        self._value: dict[str, str] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(fetch, machine), name=f"secrets-{machine.id}", daemon=True
        )
        self._thread.start()

    def _run(self, fetch: Callable[[Machine], dict[str, str]], machine: Machine) -> None:
        try:
            self._value = fetch(machine)
        except BaseException as exc:  # handed to the starting thread by result()
            self._error = exc

    def result(self) -> dict[str, str]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _need(step: Step) -> Machine:
    assert step.machine is not None, f"step {step.kind} needs a machine"
    return step.machine
