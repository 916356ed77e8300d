"""The narrow storage contract of the control plane (kine-style).

One ``StateStore`` Protocol; backends live in sibling modules and are chosen
by URL scheme in ``ferry.store.open_store``. Every method is blocking and
thread-safe: the API calls it from FastAPI's threadpool and, for quick reads,
from the event loop itself.

Concurrency rules shared by every backend:

- Each write to a machine row increments ``Machine.revision`` (per machine)
  and bumps the store-wide ``resource_version`` in the same transaction; the
  row remembers the resource version of its last write so watchers can ask
  "what changed after N?".
- ``update_machine`` carries the revision the caller read and raises
  ``RevisionConflict`` when it is stale. Callers re-read and retry a bounded
  number of times (``ferry.server.machines_service`` does three tries).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ferry.errors import RevisionConflict
from ferry.model import App, Host, HostStatus, Machine, MachineEvent, Organization
from ferry.model.autoscale import AutoscalePolicy
from ferry.model.lease import MachineLease
from ferry.model.machine import MachineVersion
from ferry.model.release import NewRelease, Release, ReleaseStatus
from ferry.store.access_base import AccessStore
from ferry.store.audit_base import AuditStore
from ferry.store.certs_base import CertStore
from ferry.store.flycast_base import FlycastStore
from ferry.store.join_base import JoinTokenStore
from ferry.store.mesh_base import MeshStore
from ferry.store.pg_follow_base import FollowPolicyStore
from ferry.store.secrets_base import SecretsStore
from ferry.store.volumes_base import VolumeStore
from ferry.store.waf_base import WafEventStore
from ferry.store.wireguard_base import WireGuardPeerStore

__all__ = ["HostSnapshot", "PlacementVersions", "StalePlacement", "StateStore"]


@dataclass(frozen=True)
class HostSnapshot:
    """The desired state of one host, read in one transaction.

    ``resource_version`` is the store-wide counter; ``host_version`` is the
    highest resource version among this host's machine rows (0 if none), so a
    watcher can tell whether *its* machines changed after a given version.
    """

    resource_version: int
    host_version: int
    machines: list[Machine]


@dataclass(frozen=True)
class PlacementVersions:
    """Where the store stands for placement: what a placement decision was based on.

    ``resource_version`` is the store-wide machine counter; ``epoch`` is bumped
    by the writes a machine delta cannot express (a host registered or gone
    up/down, an app marked destroying or deleted).
    """

    resource_version: int
    epoch: int


class StalePlacement(RevisionConflict):
    """``insert_machine(expected=…)`` found the store moved on; nothing was written.

    ``versions`` are the store's now; ``changed`` the machines written after
    ``expected.resource_version`` (read in the same transaction), or ``None``
    when the epoch moved too (then only a full read brings a view up to date).
    """

    def __init__(
        self, message: str, versions: PlacementVersions, changed: list[Machine] | None
    ) -> None:
        super().__init__(message, hint="retry the request")
        self.versions = versions
        self.changed = changed


class StateStore(
    AccessStore,
    SecretsStore,
    CertStore,
    AuditStore,
    WafEventStore,
    MeshStore,
    JoinTokenStore,
    WireGuardPeerStore,
    VolumeStore,
    FlycastStore,
    FollowPolicyStore,
    Protocol,
):
    """Durable state of the control plane. All methods block; all are thread-safe.

    Raises ``NotFoundError`` for unknown names and ids, ``ConflictError`` for
    duplicates, ``RevisionConflict`` for stale machine writes, and
    ``UnavailableError`` when the database itself fails.
    """

    # -- organizations and apps ---------------------------------------------
    def get_org(self, slug: str) -> Organization:
        """The organization ``slug``; raises ``NotFoundError``."""
        ...

    def create_app(self, app: App) -> App:
        """Insert ``app``; raises ``ConflictError`` if the name is taken, ``NotFoundError``
        if its organization does not exist."""
        ...

    def get_app(self, name: str) -> App:
        """The app ``name`` with its live machine count; raises ``NotFoundError``."""
        ...

    def list_apps(self, org_slug: str | None = None) -> list[App]:
        """Apps sorted by name, optionally of one organization."""
        ...

    def set_app_status(self, name: str, status: str) -> None:
        """Set the app's status (``deployed``, ``destroying``); raises ``NotFoundError``."""
        ...

    def delete_app(self, name: str) -> None:
        """Remove the app with its machine rows, events and logs. Idempotent."""
        ...

    # -- hosts ---------------------------------------------------------------
    def upsert_host(self, host: Host) -> Host:
        """Insert or replace the host with ``host.id`` (idempotent re-registration)."""
        ...

    def get_host(self, host_id: str) -> Host:
        """The host ``host_id``; raises ``NotFoundError``."""
        ...

    def list_hosts(self) -> list[Host]:
        """All registered hosts sorted by id."""
        ...

    def record_heartbeat(self, host_id: str, at: datetime) -> Host:
        """Set ``last_heartbeat`` and mark the host up; raises ``NotFoundError``."""
        ...

    def set_host_status(self, host_id: str, status: HostStatus) -> None:
        """Mark a host up or down; raises ``NotFoundError``."""
        ...

    # -- machines ------------------------------------------------------------
    def insert_machine(
        self,
        machine: Machine,
        event: MachineEvent | None = None,
        *,
        expected: PlacementVersions | None = None,
    ) -> Machine:
        """Insert a new machine (revision 1) and, atomically, its first event;
        return it as stored (without re-reading it).

        With ``expected``, the insert happens only if the store is still at
        those versions (nothing written since the placement was decided);
        otherwise nothing is written and ``StalePlacement`` is raised. The
        new resource version is then ``expected.resource_version + 1``.
        Raises ``ConflictError`` if the id exists or the private IP is in use on
        the host by a machine that is not destroyed.
        """
        ...

    def placement_state(self) -> tuple[PlacementVersions, list[Host], list[Machine]]:
        """The versions, every host and every machine not destroyed, in one read."""
        ...

    def machines_since(self, resource_version: int) -> tuple[PlacementVersions, list[Machine]]:
        """The versions and the machines (destroyed ones too) written after
        ``resource_version``, oldest write first, in one read."""
        ...

    def get_machine(self, machine_id: str) -> Machine:
        """The machine ``machine_id`` (without events); raises ``NotFoundError``."""
        ...

    def list_machines(
        self,
        *,
        app_name: str | None = None,
        host_id: str | None = None,
        host_ids: Collection[str] | None = None,
        include_destroyed: bool = True,
    ) -> list[Machine]:
        """Machines (without events) sorted by creation time, filtered as asked
        (``host_ids``: on any of these hosts).

        ``include_destroyed=False`` leaves out machines whose actual state is
        ``destroyed``.
        """
        ...

    def update_machine(
        self,
        machine_id: str,
        expected_revision: int,
        *,
        event: MachineEvent | None = None,
        **changes: Any,
    ) -> Machine:
        """Apply ``changes`` (``Machine`` field names) if the row is at ``expected_revision``.

        Bumps the revision and the store-wide resource version, and appends
        ``event``, all in one transaction. Raises ``RevisionConflict`` when the
        revision is stale, ``NotFoundError`` for an unknown id, ``ValueError``
        for a field that cannot be changed (a programming error).
        """
        ...

    def host_snapshot(self, host_id: str) -> HostSnapshot:
        """Every machine assigned to ``host_id`` whose actual state is not ``destroyed``."""
        ...

    def resource_version(self) -> int:
        """The store-wide counter bumped by every machine write.

        A new store starts at 1, so a watcher's ``since=0`` always means "never seen".
        """
        ...

    # -- leases and config versions -------------------------------------------
    def get_lease(self, machine_id: str) -> MachineLease | None:
        """The machine's stored lease (live or expired), or ``None``."""
        ...

    def put_lease(self, machine_id: str, lease: MachineLease, *, expected: str | None) -> None:
        """Store ``lease`` if the stored one still has version ``expected``
        (``None``: there is none); else ``RevisionConflict``."""
        ...

    def delete_lease(self, machine_id: str, *, expected: str) -> None:
        """Remove the lease if it still has version ``expected``; else ``RevisionConflict``."""
        ...

    def list_machine_versions(self, machine_id: str) -> list[MachineVersion]:
        """Every config the machine had, newest first; written by the machine writes
        that set ``config`` or ``instance_id`` (one entry per instance id)."""
        ...

    # -- events and logs -----------------------------------------------------
    def append_event(self, machine_id: str, event: MachineEvent) -> None:
        """Append an event without changing the machine row (no revision bump)."""
        ...

    def list_events(self, machine_id: str, limit: int = 100) -> list[MachineEvent]:
        """The machine's events, newest first."""
        ...

    def append_logs(self, machine_id: str, lines: list[str], *, keep: int = 1000) -> None:
        """Append log lines, keeping only the last ``keep`` lines of the machine."""
        ...

    def tail_logs(self, machine_id: str, tail: int) -> list[str]:
        """The last ``tail`` log lines of the machine, oldest first."""
        ...

    # -- autoscale policies (Ferry-only) --------------------------------------
    def set_autoscale_policy(self, app_name: str, policy: AutoscalePolicy) -> None:
        """Store (replace) the app's ``[autoscale]`` policy. Idempotent.

        Raises ``NotFoundError`` when the app does not exist.
        """
        ...

    def get_autoscale_policy(self, app_name: str) -> AutoscalePolicy | None:
        """The app's policy, or ``None`` when it has none (or the app does not exist)."""
        ...

    def delete_autoscale_policy(self, app_name: str) -> bool:
        """Remove the app's policy; ``True`` if there was one. Idempotent."""
        ...

    def list_autoscale_policies(self) -> dict[str, AutoscalePolicy]:
        """Every stored policy by app name (``delete_app`` removes an app's policy)."""
        ...

    # -- releases (Ferry-only) -------------------------------------------------
    def create_release(self, app_name: str, new: NewRelease, *, user: str, at: datetime) -> Release:
        """Record a ``running`` release with the app's next version (1 for the first).

        Raises ``NotFoundError`` when the app does not exist. ``delete_app``
        removes the app's releases.
        """
        ...

    def get_release(self, app_name: str, version: int) -> Release:
        """Release ``version`` of the app; raises ``NotFoundError``."""
        ...

    def list_releases(self, app_name: str, limit: int = 100) -> list[Release]:
        """The app's newest ``limit`` releases, newest first (empty for an unknown app)."""
        ...

    def finish_release(
        self, app_name: str, version: int, status: ReleaseStatus, *, at: datetime
    ) -> Release:
        """Set a ``running`` release ``complete`` or ``failed``.

        Raises ``NotFoundError`` for an unknown release and ``ConflictError``
        when it is not running (a finished release never changes).
        """
        ...

    # -- meta ----------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """A small server setting, or ``None``."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Store a small server setting (idempotent)."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...
