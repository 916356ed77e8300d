"""What agents do through the API: register, heartbeat, report machine status, upload logs.

All methods block on store I/O and are safe from several threads. Every
machine write notifies the watchers of that host after it commits.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ferry.errors import NotFoundError, RevisionConflict, ValidationError
from ferry.model import DesiredState, Host, HostStatus, Machine, MachineState
from ferry.server.apps_service import AppService
from ferry.server.clock import Clock
from ferry.server.machines_service import make_event
from ferry.server.schemas import RegisterHostRequest, StatusReport
from ferry.server.watch import ChangeNotifier
from ferry.store import StateStore

__all__ = ["HostService", "machine_network"]

_TRIES = 3
_KEEP_LOG_LINES = 1000


class HostService:
    """The agent-facing half of the control plane's service layer."""

    def __init__(
        self, store: StateStore, clock: Clock, notifier: ChangeNotifier, apps: AppService
    ) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier
        self.apps = apps

    def register(self, request: RegisterHostRequest) -> Host:
        """Insert or update the host and mark it up. Idempotent (agent restarts).

        Raises ``ValidationError`` for a subnet that is not a CIDR.
        """
        network = machine_network(request.machine_subnet)
        now = self.clock.now()
        host = Host(
            id=request.id,
            region=request.region,
            address=request.address,
            cpus=request.cpus,
            memory_mb=request.memory_mb,
            machine_subnet=str(network),
            status=HostStatus.UP,
            last_heartbeat=now,
            registered_at=now,
        )
        stored = self.store.upsert_host(host)
        self.notifier.notify(stored.id)
        return stored

    def heartbeat(self, host_id: str) -> Host:
        """Record a heartbeat and mark the host up; ``NotFoundError`` if unregistered."""
        return self.store.record_heartbeat(host_id, self.clock.now())

    def machine_of_host(self, host_id: str, machine_id: str) -> Machine:
        """The machine, if it is assigned to ``host_id``; else ``NotFoundError``."""
        self.store.get_host(host_id)
        try:
            machine = self.store.get_machine(machine_id)
        except NotFoundError:
            machine = None
        if machine is None or machine.host_id != host_id:
            raise NotFoundError(
                f"machine {machine_id!r} is not assigned to host {host_id!r}",
                hint="drop it locally; it is not part of this host's desired state",
            )
        return machine

    def report_status(self, host_id: str, machine_id: str, report: StatusReport) -> Machine:
        """Record the actual state the agent observed, with its event.

        A report about an older ``instance_id`` only adds the event. Reporting
        ``destroyed`` also makes the desired state ``destroyed`` (the machine is
        gone either way) and, if its app was being deleted and this was the
        last machine, removes the app.
        """
        event = make_event(
            self.clock,
            report.event.type,
            report.event.status,
            "flyd",
            reason=report.event.reason,
            exit_code=report.exit_code,
            instance_id=report.instance_id,
        )
        for attempt in range(_TRIES):
            machine = self.machine_of_host(host_id, machine_id)
            if report.instance_id != machine.instance_id:
                self.store.append_event(machine.id, event)
                return machine
            changes = self._changes_of(machine, report)
            try:
                updated = self.store.update_machine(
                    machine.id, machine.revision, event=event, **changes
                )
            except RevisionConflict:
                if attempt == _TRIES - 1:
                    raise
                continue
            self.notifier.notify(host_id)
            if updated.state is MachineState.DESTROYED:
                self.apps.finish_delete_if_done(updated.app_name)
            return updated
        raise AssertionError("unreachable")  # pragma: no cover

    def _changes_of(self, machine: Machine, report: StatusReport) -> dict[str, Any]:
        """The machine fields a report changes.

        A ``health`` report carries check results only: it never moves the
        state, so a late health report cannot undo a stop. A final ``exit`` or
        failed ``launch`` (``stopped``/``failed`` while meant to run) makes the
        desired state ``stopped``: the restart policy gave up, and a later
        start asks again. A ``stop`` report never touches the desired state, so
        a start that raced the stop wins.
        """
        now = self.clock.now()
        checks = None
        if report.checks is not None:
            checks = [
                c if c.updated_at else c.model_copy(update={"updated_at": now})
                for c in report.checks
            ]
        if report.event.type == "health":
            return {"checks": checks} if checks is not None else {}
        changes: dict[str, Any] = {"state": report.state, "updated_at": now}
        if report.exit_code is not None or report.state is MachineState.STARTED:
            changes["exit_code"] = report.exit_code
        if report.restart_count is not None:
            changes["restart_count"] = report.restart_count
        if checks is not None:
            changes["checks"] = checks
        if report.state is MachineState.DESTROYED:
            changes["desired_state"] = DesiredState.DESTROYED
        elif (
            report.state in (MachineState.STOPPED, MachineState.FAILED)
            and report.event.type in ("exit", "launch")
            and machine.desired_state is DesiredState.STARTED
        ):
            changes["desired_state"] = DesiredState.STOPPED
        return changes

    def upload_logs(self, host_id: str, machine_id: str, lines: list[str]) -> None:
        """Append log lines of a machine (the last 1000 are kept)."""
        machine = self.machine_of_host(host_id, machine_id)
        self.store.append_logs(machine.id, lines, keep=_KEEP_LOG_LINES)


def machine_network(subnet: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The host's machine subnet as a network; ``ValidationError`` names what is wrong."""
    try:
        network = ipaddress.ip_network(subnet, strict=False)
    except ValueError as exc:
        raise ValidationError(
            f"machine_subnet {subnet!r} is not a network",
            hint="write it as a CIDR such as 10.1.0.0/24",
        ) from exc
    if network.num_addresses < 4:
        raise ValidationError(
            f"machine_subnet {subnet} is too small for any machine",
            hint="use a /29 or larger",
        )
    return network
