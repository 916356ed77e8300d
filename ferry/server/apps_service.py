"""Apps: create, list, delete. Deleting is two-phase: every machine is marked desired
``destroyed``; the app row goes once the agents report the last one destroyed.

All functions block on store I/O and are safe from several threads. After
creating or deleting an app row the service calls its ``listeners`` (the
authentication cache forgets apps' organizations).
"""

from __future__ import annotations

from collections.abc import Callable

from ferry.errors import ConflictError, NotFoundError, RevisionConflict, ValidationError
from ferry.model import App, DesiredState, MachineState, Organization
from ferry.model.names import APP_NAME_RULE, app_name_problem
from ferry.model.volume import VolumeState
from ferry.server.clock import Clock
from ferry.server.ids import new_app_id
from ferry.server.machines_service import make_event
from ferry.server.watch import ChangeNotifier
from ferry.store import StateStore

__all__ = ["AppService"]

_TRIES = 3
_RUNNING = {MachineState.STARTING, MachineState.STARTED, MachineState.RESTARTING}


class AppService:
    """The app half of the control plane's service layer."""

    def __init__(self, store: StateStore, clock: Clock, notifier: ChangeNotifier) -> None:
        self.store = store
        self.clock = clock
        self.notifier = notifier
        #: Called with the app's name after it was created or deleted; must not raise.
        self.listeners: list[Callable[[str], None]] = []

    def _changed(self, name: str) -> None:
        for listener in self.listeners:
            listener(name)

    def create(self, name: str, org_slug: str, network: str) -> App:
        """Create an app. ``ValidationError`` for a bad name, ``NotFoundError`` for an
        unknown org, ``ConflictError`` when the name is taken."""
        problem = app_name_problem(name)
        if problem is not None:
            raise ValidationError(f"invalid app name {name!r}: it {problem}", hint=APP_NAME_RULE)
        if network not in ("", "default"):
            raise ValidationError(
                f"network {network!r}: custom private networks are not supported; every app "
                "of an organization shares its 6PN network",
                hint='omit network (or send "default"); docs/networking.md',
            )
        org = self.store.get_org(org_slug)
        app = App(
            id=new_app_id(),
            name=name,
            organization=Organization(name=org.name, slug=org.slug),
            network=network or "default",
            created_at=self.clock.now(),
        )
        created = self.store.create_app(app)
        self._changed(name)
        return created

    def delete(self, name: str, *, force: bool = False) -> str:
        """Start deleting the app; returns ``"deleted"`` or ``"destroying"``.

        Idempotent. Raises ``NotFoundError`` for an unknown app, ``ConflictError``
        while it has volumes (even with ``force``), or when machines are running and
        ``force`` is false.
        """
        self.store.get_app(name)
        volumes = [
            v.id
            for v in self.store.list_volumes(app_name=name)
            if v.state not in (VolumeState.PENDING_DESTROY, VolumeState.DESTROYED)
        ]
        if volumes:  # only the owner's explicit destroy deletes a volume's data
            raise ConflictError(
                f"app {name!r} has {len(volumes)} volume(s): {', '.join(volumes)}",
                hint="destroy them first (`ferry volumes destroy ID`), then the app",
            )
        live = self.store.list_machines(app_name=name, include_destroyed=False)
        running = [m.id for m in live if m.state in _RUNNING]
        if running and not force:
            raise ConflictError(
                f"app {name!r} has {len(running)} running machine(s): {', '.join(running)}",
                hint="stop them first, or delete with force=true",
            )
        if not live:
            self.store.delete_app(name)
            self._changed(name)
            return "deleted"
        self.store.set_app_status(name, "destroying")
        for machine in live:
            self._mark_destroyed(machine.id)
        return "destroying"

    def _mark_destroyed(self, machine_id: str) -> None:
        for attempt in range(_TRIES):
            machine = self.store.get_machine(machine_id)
            if machine.desired_state is DesiredState.DESTROYED:
                return
            event = make_event(self.clock, "destroy", "requested", "user", reason="app deleted")
            try:
                self.store.update_machine(
                    machine.id,
                    machine.revision,
                    event=event,
                    desired_state=DesiredState.DESTROYED,
                    updated_at=self.clock.now(),
                )
            except RevisionConflict:
                if attempt == _TRIES - 1:
                    raise
                continue
            self.notifier.notify(machine.host_id)
            return

    def finish_delete_if_done(self, name: str) -> bool:
        """Remove an app being deleted once none of its machines is left. Idempotent."""
        try:
            app = self.store.get_app(name)
        except NotFoundError:
            return False
        if app.status != "destroying" or app.machine_count > 0:
            return False
        self.store.delete_app(name)
        self._changed(name)
        return True
