"""The routing table a proxy keeps in memory (and on disk): what runs where.

Built from the control plane's machines (``routes_from_machines``), it is the
only input about machines that routing decisions see; health and load are
the proxy's own observations, kept separately.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ferry.model import CheckConfig, Concurrency, DesiredState, Machine, MachineState
from ferry.model.machine_statics import StaticConfig
from ferry.model.machine_waf import WafConfig


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
    #: Public ports whose own handlers are ``http`` without ``tls`` (``handlers`` above
    #: merges every port's): what Flycast serves, plain HTTP only.
    http_ports: tuple[int, ...] = ()


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
    sixpn: str = ""  # its 6PN address ("" when it has none): Flycast's kernel path

    @property
    def started(self) -> bool:
        return self.state is MachineState.STARTED and self.desired_state is DesiredState.STARTED


@dataclass(frozen=True)
class AppStatics:
    """What the edge serves itself for one app (``[[statics]]``): files of ``image``.

    ``image`` is the machine's image reference, pinned by digest; ``digest`` is
    its ``sha256:<hex>``.
    """

    image: str
    digest: str
    statics: tuple[StaticConfig, ...]


@dataclass(frozen=True)
class RouteTable:
    """An immutable snapshot: app name -> its backends, at the store's resource ``version``.

    ``statics``: app name -> the statics the edge serves, for apps that have any.
    ``waf``: app name -> its ``[waf]``, for apps whose mode is not ``off``.
    """

    version: int = 0
    apps: Mapping[str, tuple[Backend, ...]] = field(default_factory=dict)
    statics: Mapping[str, AppStatics] = field(default_factory=dict)
    waf: Mapping[str, WafConfig] = field(default_factory=dict)

    def backends(self, app: str) -> tuple[Backend, ...]:
        return self.apps.get(app, ())


#: Networks the edge reaches machines' host-local IPv4 on (its region's LAN); ``None``:
#: every host is on it (the default of a single-network setup).
Lan = tuple[ipaddress.IPv4Network, ...] | None


def machine_address(m: Machine, lan: Lan = None) -> str:
    """Where the edge sends the machine's traffic: its host-local IPv4 when the host is on
    the edge's LAN, else its 6PN address, carried by the WireGuard mesh (a host joined
    from another network). A machine without a 6PN address stays on IPv4."""
    if lan is None or not m.private_ip:
        return m.host_ip
    try:
        ip = ipaddress.IPv4Address(m.host_ip)
    except ValueError:
        return m.private_ip
    return m.host_ip if any(ip in net for net in lan) else m.private_ip


def backend_from_machine(m: Machine, lan: Lan = None) -> Backend:
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
                http_ports=tuple(
                    p.port
                    for p in s.ports
                    if p.port is not None and "http" in p.handlers and "tls" not in p.handlers
                ),
            )
        )
    return Backend(
        machine_id=m.id,
        instance_id=m.instance_id,
        app=m.app_name,
        region=m.region,
        address=machine_address(m, lan),
        state=m.state,
        desired_state=m.desired_state,
        services=tuple(services),
        sixpn=m.private_ip or "",
    )


def routes_from_machines(version: int, machines: Iterable[Machine], lan: Lan = None) -> RouteTable:
    """The table for every machine that is not destroyed (stopped ones stay: they can be woken).

    An app's statics and ``[waf]`` are those of its newest started machine (its
    newest machine when none is started): during a deploy the edge moves to the
    new release's files and firewall settings as soon as one of its machines runs.
    """
    apps: dict[str, list[Backend]] = {}
    newest: dict[str, Machine] = {}
    for m in machines:
        if m.state is MachineState.DESTROYED or m.desired_state is DesiredState.DESTROYED:
            continue
        apps.setdefault(m.app_name, []).append(backend_from_machine(m, lan))
        best = newest.get(m.app_name)
        if best is None or _newer(m, best):
            newest[m.app_name] = m
    statics: dict[str, AppStatics] = {}
    waf: dict[str, WafConfig] = {}
    for app, m in newest.items():
        digest = m.config.image.rpartition("@")[2]
        if m.config.statics and digest.startswith("sha256:"):
            statics[app] = AppStatics(m.config.image, digest, tuple(m.config.statics))
        if m.config.waf is not None and m.config.waf.enabled:
            waf[app] = m.config.waf
    return RouteTable(version, {app: tuple(b) for app, b in apps.items()}, statics, waf)


def _newer(m: Machine, than: Machine) -> bool:
    started = m.state is MachineState.STARTED
    other_started = than.state is MachineState.STARTED
    if started != other_started:
        return started
    return (m.created_at, m.id) > (than.created_at, than.id)
