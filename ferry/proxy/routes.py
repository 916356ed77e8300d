"""The routing table a proxy keeps in memory (and on disk): what runs where.

Built from the control plane's machines (``routes_from_machines``), it is the
only input about machines that routing decisions see; health and load are
the proxy's own observations, kept separately.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ferry.model import CheckConfig, Concurrency, DesiredState, Machine, MachineState


@dataclass(frozen=True)
class ServicePorts:
    """One service of an app: public ports on the edge -> the machine's internal port."""

    internal_port: int
    protocol: str = "tcp"
    ports: tuple[int, ...] = ()  # public ports; 80 for an http_service
    handlers: tuple[str, ...] = ()  # "http" for HTTP routing; empty = raw TCP
    force_https: bool = False
    concurrency: Concurrency = field(default_factory=Concurrency)
    checks: tuple[CheckConfig, ...] = ()
    autostart: bool = True
    autostop: str = "off"
    min_machines_running: int = 0


@dataclass(frozen=True)
class Backend:
    """A machine as the proxy sees it."""

    machine_id: str
    instance_id: str
    app: str
    region: str
    address: str  # private IP
    state: MachineState
    desired_state: DesiredState
    services: tuple[ServicePorts, ...] = ()

    @property
    def started(self) -> bool:
        return self.state is MachineState.STARTED and self.desired_state is DesiredState.STARTED


@dataclass(frozen=True)
class RouteTable:
    """An immutable snapshot: app name -> its backends, at the store's resource ``version``."""

    version: int = 0
    apps: Mapping[str, tuple[Backend, ...]] = field(default_factory=dict)

    def backends(self, app: str) -> tuple[Backend, ...]:
        return self.apps.get(app, ())


def backend_from_machine(m: Machine) -> Backend:
    services = []
    for s in m.config.services:
        ports = tuple(p.port for p in s.ports if p.port is not None)
        handlers = tuple(sorted({h for p in s.ports for h in p.handlers}))
        services.append(
            ServicePorts(
                internal_port=s.internal_port,
                protocol=s.protocol,
                ports=ports,
                handlers=handlers,
                force_https=any(p.force_https for p in s.ports),
                concurrency=s.concurrency or Concurrency(),
                checks=tuple(s.checks),
                autostart=s.autostart,
                autostop=s.autostop,
                min_machines_running=s.min_machines_running,
            )
        )
    return Backend(
        machine_id=m.id,
        instance_id=m.instance_id,
        app=m.app_name,
        region=m.region,
        address=m.private_ip,
        state=m.state,
        desired_state=m.desired_state,
        services=tuple(services),
    )


def routes_from_machines(version: int, machines: Iterable[Machine]) -> RouteTable:
    """The table for every machine that is not destroyed (stopped ones stay: they can be woken)."""
    apps: dict[str, list[Backend]] = {}
    for m in machines:
        if m.state is MachineState.DESTROYED or m.desired_state is DesiredState.DESTROYED:
            continue
        apps.setdefault(m.app_name, []).append(backend_from_machine(m))
    return RouteTable(version, {app: tuple(b) for app, b in apps.items()})
