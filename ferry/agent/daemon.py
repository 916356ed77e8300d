"""``ferry agent``: the host daemon.

Threads, each with one job:
- watcher: long-polls the control plane for this host's desired machines;
- heartbeat: tells the control plane the host is alive;
- health: runs machines' checks and ships their logs;
- ps: every ``PS_REPORT_SECONDS`` reports the processes of the started machines
  (``ferry.agent.ps_report``: read from /proc, no exec);
- image-gc: every ``IMAGE_GC_SECONDS`` deletes cached images and frees uid ranges nothing here needs
  (``RegistryImageStore.collect``; the decision is ``ferry.runtime.image_gc``);
- exec: long-polls for exec orders and runs them in their machines
  (``ferry.agent.exec_loop``: ``runc exec``, bounded in time and output);
- volumes: every second makes the host's volumes match the control plane's
  (``ferry.agent.volume_loop``: ext4 images on loop devices, snapshots);
- main loop: each cycle reads a fresh snapshot (desired + containers), asks the
  pure ``plan_host`` for steps, logs each step's one-line reason and hands the
  step to a worker pool. Level-triggered: a lost wake-up costs one cycle.

On start it adopts the containers that are already running (their shims
outlived the previous agent), so a restart makes no duplicates and no orphans.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from ferry.agent.checks import CheckTracker
from ferry.agent.console import ConsoleRunner
from ferry.agent.exec_loop import ExecLoop
from ferry.agent.flycast_host import HostFastPath, HostFastView
from ferry.agent.housekeeping import Housekeeper
from ferry.agent.isolation_keeper import IsolationKeeper, IsolationSettings
from ferry.agent.logship import LogShipper
from ferry.agent.network_hook import BRIDGE, MachineNetwork
from ferry.agent.private_net import PrivateNetSettings, resolv_conf, start_private_network
from ferry.agent.ps_report import PS_REPORT_SECONDS, ProcessReporter
from ferry.agent.reconcile import MachineMemory, Step, container_id, plan_host
from ferry.agent.runner import HostIdentity, StepRunner
from ferry.agent.volume_loop import VolumeKeeper
from ferry.client import FerryClient
from ferry.errors import FerryError, ValidationError
from ferry.model import DesiredState, Host, Machine, MachineState
from ferry.net import sixpn
from ferry.runtime.driver import ContainerStatus
from ferry.runtime.image_gc import GcPolicy
from ferry.runtime.images import RegistryImageStore
from ferry.runtime.process_sampler import ProcessSampler
from ferry.runtime.runc import RuncDriver
from ferry.runtime.userns import IdRangeAllocator

log = logging.getLogger("ferry.agent")

CYCLE_SECONDS = 0.5
HEARTBEAT_SECONDS = 2.0
WATCH_TIMEOUT = 20.0
IMAGE_GC_SECONDS = 600.0
STOP_HEALTH_SECONDS = 5.0  # the health thread's last pass: at most a check's timeout


@dataclass(frozen=True)
class AgentSettings:
    host_id: str
    region: str
    address: str
    cpus: int
    memory_mb: int
    machine_subnet: str
    state_dir: Path
    netns_prefix: str
    api_url: str
    token: str
    cgroup_parent: str = "ferry"
    insecure_registries: tuple[str, ...] = ()
    image_gc: GcPolicy = field(default_factory=GcPolicy)
    # Machines in user namespaces of their own (docs/isolation.md); the table of uid
    # ranges must be shared by every agent on one kernel (default: state_dir's).
    user_namespaces: bool = True
    id_ranges_file: Path | None = None
    readonly_root: bool = False
    # The WireGuard mesh and the .internal resolver (docs/networking.md); off by default.
    private_net: PrivateNetSettings = field(default_factory=PrivateNetSettings)
    # nftables isolation between organizations (docs/networking.md); off by default.
    isolation: IsolationSettings = field(default_factory=IsolationSettings)


class Agent:
    """One host's agent. ``run()`` blocks until ``stop()`` (or SIGTERM/SIGINT)."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.client = FerryClient(settings.api_url, settings.token)
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.driver = RuncDriver(
            settings.state_dir / "runtime",
            cgroup_parent=settings.cgroup_parent,
            resolv_conf=resolv_conf(settings.state_dir) if settings.private_net.dns else None,
        )
        self.images = RegistryImageStore(
            settings.state_dir / "images", insecure_registries=settings.insecure_registries
        )
        self.network = MachineNetwork(settings.netns_prefix, settings.machine_subnet)
        self.memory: dict[str, MachineMemory] = {}
        # Its own client: the keeper's passes run beside the watch and the steps.
        self.volumes = VolumeKeeper(
            FerryClient(settings.api_url, settings.token),
            settings.host_id,
            settings.state_dir / "volumes",
        )
        self.runner = StepRunner(
            HostIdentity(settings.host_id, settings.region),
            self.driver,
            self.images,
            self.network,
            self.client,
            self.memory,
            before_destroy=self._ship_rest,
            secrets=self.client,
            id_ranges=IdRangeAllocator(
                settings.id_ranges_file or settings.state_dir / "id-ranges.json"
            )
            if settings.user_namespaces
            else None,
            readonly_root=settings.readonly_root,
            volumes=self.volumes,
        )
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="step")
        self.checks = CheckTracker()
        self.logs = LogShipper(self.driver)
        self.processes = ProcessReporter(ProcessSampler(), self.driver.cgroups_path)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._snapshot: list[Machine] | None = None
        self._version = 0
        self._delivered_at = 0.0  # wall-clock time the snapshot arrived (start breakdowns)
        self._busy: set[str] = set()
        self.housekeeper = Housekeeper(
            settings.host_id, self.driver, self.images, self.runner.id_ranges, settings.image_gc
        )
        self.isolation = IsolationKeeper(
            settings.isolation, self.network.netns_name, BRIDGE, mesh=()
        )  # the mesh interface is named once the host has its 6PN number
        # Flycast's kernel path on this host (its region edge's plan, gated by our checks).
        self.fast_plans = HostFastView()
        self.flycast_host = (
            HostFastPath(settings.region, self.fast_plans)
            if settings.private_net.mesh_endpoint
            else None
        )

    # -- lifecycle ---------------------------------------------------------

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.network.ensure_bridge()
        self.network.drop_prepared()  # a previous agent's: maybe half-made
        host = self._register()
        if host is not None:
            self._start_private_network(host)
        threads = [
            threading.Thread(target=self._watch_loop, name="watch", daemon=True),
            threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True),
            (health := threading.Thread(target=self._health_loop, name="health", daemon=True)),
            threading.Thread(target=self._image_gc_loop, name="image-gc", daemon=True),
            threading.Thread(target=self._ps_loop, name="ps", daemon=True),
            threading.Thread(target=self._exec_loop, name="exec", daemon=True),
            threading.Thread(
                target=self.volumes.run, args=(self._stopping,), name="volumes", daemon=True
            ),
        ]
        for t in threads:
            t.start()
        log.info(
            "agent %s (%s) up; state in %s",
            self.settings.host_id,
            self.settings.region,
            self.settings.state_dir,
        )
        while not self._stopping.is_set():
            self._wake.wait(CYCLE_SECONDS)
            self._wake.clear()
            try:
                self.cycle()
            except FerryError as exc:
                log.warning("cycle failed: %s", exc)
            except Exception:  # the loop must outlive any one pass: the next one retries
                log.exception("cycle failed unexpectedly; the next cycle tries again")
        # Containers keep running: their shims outlive the agent, the next agent adopts them.
        health.join(timeout=STOP_HEALTH_SECONDS)  # it empties Flycast's host path last
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.network.drop_prepared()
        log.info("agent %s stopped", self.settings.host_id)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d: stopping", signum)
        self.stop()

    def _start_private_network(self, host: Host) -> None:
        mesh = self.settings.private_net.mesh_interface(host)
        self.isolation = IsolationKeeper(
            self.settings.isolation, self.network.netns_name, BRIDGE, mesh=mesh
        )
        try:
            start_private_network(
                self.settings.private_net,
                self.client,
                host,
                self.settings.state_dir,
                self.local_prefixes,
                self._stopping,
                self.fast_plans,
            )
        except (FerryError, OSError) as exc:
            log.error("private network not started: %s", exc)

    def local_prefixes(self) -> list[str]:
        """The 6PN /112s of this host's live machines (they stay local, never meshed)."""
        with self._lock:
            desired = self._snapshot or []
        prefixes = []
        for m in desired:
            if m.state is MachineState.DESTROYED:
                continue
            try:
                prefixes.append(str(sixpn.parse(m.private_ip).prefix))
            except ValidationError:
                continue
        return prefixes

    def _register(self) -> Host | None:
        s = self.settings
        while not self._stopping.is_set():
            try:
                return self.client.register_host(
                    host_id=s.host_id,
                    region=s.region,
                    address=s.address,
                    cpus=s.cpus,
                    memory_mb=s.memory_mb,
                    machine_subnet=s.machine_subnet,
                )
            except FerryError as exc:
                log.warning("cannot register with %s yet: %s", s.api_url, exc)
                self._stopping.wait(1.0)
        return None

    # -- the cycle ----------------------------------------------------------

    def cycle(self) -> list[Step]:
        """One reconcile pass; returns the steps it started (for tests and logs)."""
        with self._lock:
            desired = self._snapshot
            busy = set(self._busy)
            delivered_at = self._delivered_at
        if desired is None:
            return []  # never act before the first snapshot: it could look like "nothing wanted"
        containers = self.driver.list()
        self._adopt(desired, containers)
        steps = plan_host(desired, containers, self.memory, busy, time.monotonic())
        for step in steps:
            log.info("%s: %s (snapshot of %.6f)", step.kind.value, step.reason, delivered_at)
            with self._lock:
                self._busy.add(step.machine_id)
            self.pool.submit(self._run_step, step)
        if not steps:
            log.debug("no action: %d machines, %d containers", len(desired), len(containers))
        self.isolation.sync(desired)
        if not steps and not busy:
            # Only while idle: making namespaces must not compete with a start for the CPU.
            live = [m.host_ip for m in desired if m.state is not MachineState.DESTROYED]
            self.network.prepare(live)
        return steps

    def _adopt(self, desired: list[Machine], containers: list[ContainerStatus]) -> None:
        running = {c.container_id for c in containers}
        for m in desired:
            if m.id not in self.memory and container_id(m) in running:
                self.memory[m.id] = MachineMemory(acted_generation=m.generation)
                log.info("adopted running machine %s (%s)", m.id, m.instance_id)
                self._give_address(m)

    def _give_address(self, m: Machine) -> None:
        """Make sure an adopted running machine has its 6PN address (idempotent): one
        started by an agent from before 6PN gets it without a restart. Never raises."""
        if not m.private_ip:
            return
        try:
            self.network.ensure(m.id, m.host_ip, m.private_ip)
        except FerryError as exc:
            log.warning("could not give %s its 6PN address %s: %s", m.id, m.private_ip, exc)

    def _run_step(self, step: Step) -> None:
        try:
            self.runner.run(step)
        finally:
            with self._lock:
                self._busy.discard(step.machine_id)
            self._wake.set()

    def _ship_rest(self, machine: Machine, cid: str) -> None:
        """Before a container's directory goes, ship the output the loop has not shipped yet
        (a release command's output, a crash's last lines). Never raises."""
        try:
            self.logs.ship_rest(machine.id, cid, self.client, self.settings.host_id)
        except Exception:
            log.exception("could not ship the last output of %s", machine.id)

    # -- background loops ----------------------------------------------------

    def _image_gc_loop(self) -> None:
        while not self._stopping.wait(IMAGE_GC_SECONDS):
            with self._lock:
                desired = self._snapshot
            self.housekeeper.collect(desired)

    def _watch_loop(self) -> None:
        since = 0
        while not self._stopping.is_set():
            try:
                version, machines = self.client.watch_host_machines(
                    self.settings.host_id, since=since, timeout=WATCH_TIMEOUT
                )
            except FerryError as exc:
                log.warning("watch failed (control plane down?): %s; keeping last state", exc)
                self._stopping.wait(1.0)
                continue
            with self._lock:
                self._snapshot = list(machines)
                self._delivered_at = time.time()
            since = version
            self._wake.set()

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.client.heartbeat(self.settings.host_id)
            except FerryError as exc:
                log.warning("heartbeat failed: %s", exc)
                if "not found" in str(exc).lower():
                    self._register()

    def _health_loop(self) -> None:
        """Checks and log shipping of every started machine. Never dies: each machine's
        failure is handled inside ``check_and_report``/``ship``; anything else is logged."""
        last_ship = 0.0
        while not self._stopping.wait(0.1):
            with self._lock:
                desired = list(self._snapshot or [])
            started = [
                m
                for m in desired
                if m.desired_state is DesiredState.STARTED and m.state is MachineState.STARTED
            ]
            try:
                self.checks.check_and_report(started, self.client, self.settings.host_id)
            except Exception:
                log.exception("health checks failed this pass")
            if self.flycast_host is not None:
                try:
                    self.flycast_host.sync(started, self.checks.results)
                except Exception:
                    log.exception("flycast's host path failed this pass")
            if time.monotonic() - last_ship >= 1.0:
                last_ship = time.monotonic()
                try:
                    self.logs.ship(desired, self.client, self.settings.host_id)
                except Exception:
                    log.exception("log shipping failed this pass")
        if self.flycast_host is not None:  # nobody checks the machines from now on
            self.flycast_host.close()

    def _exec_loop(self) -> None:
        """Commands users run in this host's machines (``ferry ssh console -C``, the API's
        exec): its own long poll, with its own HTTP client (one request at a time each)."""
        s = self.settings
        consoles = ConsoleRunner(
            s.api_url, s.token, s.host_id, self.driver.runc_binary, self.driver.runc_root
        )
        with FerryClient(s.api_url, s.token) as client:
            loop = ExecLoop(client, self.driver, s.host_id, self._stopping, console=consoles.serve)
            loop.run()

    def _ps_loop(self) -> None:
        """Process reports of the started machines. Never dies: a failed pass is logged."""
        while not self._stopping.wait(PS_REPORT_SECONDS):
            with self._lock:
                desired = list(self._snapshot or [])
            try:
                self.processes.report(desired, self.client, self.settings.host_id)
            except FerryError as exc:
                log.warning("process report failed: %s", exc)
            except Exception:
                log.exception("process report failed this pass")
