"""The wiring of one control plane: store, clock, notifier and the services on top."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ferry.autoscale.distances import RegionDistances
from ferry.autoscale.loop import AutoscaleLoop
from ferry.errors import ConfigError
from ferry.postgres.follow_loop import FollowLoop
from ferry.secrets import SecretsKey
from ferry.server.access_service import AccessService
from ferry.server.apps_service import AppService
from ferry.server.auth import Authenticator
from ferry.server.autoscaler import PlaneFleet
from ferry.server.certs_service import CertService, CertSettings
from ferry.server.clock import Clock
from ferry.server.console_relay import ConsoleRelay
from ferry.server.exec_service import ExecBroker
from ferry.server.flycast_service import FlycastService
from ferry.server.hosts_service import HostService
from ferry.server.join_service import JoinService
from ferry.server.leases_service import LeaseService
from ferry.server.liveness import HostLiveness
from ferry.server.machine_labels import MachineLabels
from ferry.server.machines_service import MachineService
from ferry.server.mesh_service import MeshService
from ferry.server.pg_follow import PlaneFollowFleet
from ferry.server.processes import ProcessBook
from ferry.server.secrets_rollout import SecretsRollouts
from ferry.server.secrets_service import SecretsService
from ferry.server.traffic import EdgeTraffic
from ferry.server.volumes_service import VolumeService
from ferry.server.watch import ChangeNotifier
from ferry.server.wireguard_service import WireGuardService
from ferry.store import StateStore

__all__ = ["ControlPlane", "json_bytes", "json_response"]


@dataclass
class ControlPlane:
    """Everything a route needs; built once per app by ``create_app``."""

    store: StateStore
    clock: Clock
    notifier: ChangeNotifier
    apps: AppService
    machines: MachineService
    hosts: HostService
    liveness: HostLiveness
    autoscaler: AutoscaleLoop
    fleet: PlaneFleet
    leases: LeaseService
    labels: MachineLabels
    access: AccessService
    secrets: SecretsService
    secrets_rollouts: SecretsRollouts
    certs: CertService
    mesh: MeshService
    joins: JoinService
    wireguard: WireGuardService
    volumes: VolumeService
    flycast: FlycastService
    registry: str = ""
    auth: Authenticator | None = None
    traffic: EdgeTraffic = field(default_factory=EdgeTraffic)
    processes: ProcessBook = field(default_factory=lambda: ProcessBook(time.monotonic))
    execs: ExecBroker = field(default_factory=ExecBroker)  # exec orders in flight (memory)
    consoles: ConsoleRelay = field(default_factory=ConsoleRelay)  # interactive consoles
    pg_follow: FollowLoop = field(init=False)  # replicas that follow their apps

    @classmethod
    def build(
        cls,
        store: StateStore,
        clock: Clock,
        *,
        host_down_after: float,
        registry: str,
        distances: RegionDistances | None = None,
        secrets_key: SecretsKey | None = None,
        cert_settings: CertSettings | None = None,
    ) -> ControlPlane:
        """Wire the services. ``distances`` (region RTTs) order capacity fallbacks and the
        autoscaler's nearest regions; without them the order is alphabetical.
        ``secrets_key`` seals app secrets (``None``: a new random key, for tests);
        ``ConfigError`` when the store holds values sealed with another key.
        ``cert_settings``: the ACME CA and the edges' addresses (default: no CA)."""
        key = secrets_key or SecretsKey.generate()
        wrong = sorted((set(store.secret_key_ids()) | set(store.cert_key_ids())) - {key.id})
        if wrong:
            raise ConfigError(
                f"the store holds app secrets sealed with key {', '.join(wrong)}, "
                f"not with the control plane's key {key.id}",
                hint="start the control plane with the key the secrets were sealed with",
            )
        notifier = ChangeNotifier()
        apps = AppService(store, clock, notifier)
        distances = distances or RegionDistances()
        machines = MachineService(store, clock, notifier, distances)
        # Edge reports are timed by the plane's clock, so rates follow a test's clock too.
        traffic = EdgeTraffic(clock=lambda: clock.now().timestamp())
        fleet = PlaneFleet(store, clock, machines, traffic)
        certs = CertService(store, clock, key, cert_settings or CertSettings())
        # Deleting an app deletes its certificates: the edges' feed wakes for it.
        apps.listeners.append(lambda _app: certs.changes.notify())
        hosts = HostService(store, clock, notifier, apps)
        access = AccessService(store, clock)
        plane = cls(
            store=store,
            clock=clock,
            notifier=notifier,
            apps=apps,
            machines=machines,
            hosts=hosts,
            liveness=HostLiveness(store, clock, down_after=host_down_after),
            autoscaler=AutoscaleLoop(fleet, clock.now, distances),
            fleet=fleet,
            leases=LeaseService(store, clock, machines),
            labels=MachineLabels(machines),
            access=access,
            secrets=SecretsService(store, clock, key),
            secrets_rollouts=SecretsRollouts(store, machines, notifier),
            certs=certs,
            mesh=MeshService(store, clock, notifier),
            joins=JoinService(store, clock, hosts, access),
            wireguard=WireGuardService(store, clock, notifier),
            volumes=VolumeService(store, clock, volume_transfer_dir(store)),
            flycast=FlycastService(store, clock, notifier),
            registry=registry,
            traffic=traffic,
            processes=ProcessBook(lambda: clock.now().timestamp()),
        )
        follow = PlaneFollowFleet(store, clock, machines, plane.volumes)
        plane.pg_follow = FollowLoop(follow, clock.now)
        return plane


def volume_transfer_dir(store: StateStore) -> Path:
    """Where forks' copies wait between hosts: beside a file store, else a temp dir."""
    path = getattr(store, "path", None)
    if isinstance(path, Path):
        return path.parent / "volume-transfers"
    return Path(tempfile.mkdtemp(prefix="ferry-volume-transfers-"))


def json_response(value: Any, status_code: int = 200) -> JSONResponse:
    """Serialize models (or lists/dicts of them) once, without response_model re-validation."""
    return JSONResponse(_plain(value), status_code=status_code)


def json_bytes(value: Any) -> bytes:
    """``value`` encoded as ``json_response`` would send it (for bodies cached and sent again)."""
    return bytes(JSONResponse(_plain(value)).body)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
