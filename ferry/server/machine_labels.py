"""Changes to a machine that leave its process alone: metadata and cordon.

Metadata lives in ``config.metadata``; writing it keeps the machine's
``instance_id``, so the agent (which replaces a container only for a new
instance id) does not restart it, and its config version is updated in place.
Cordon sets Fly's ``cordoned`` flag; the edges' routing table leaves cordoned
machines out (``routes/edges.py``). Each write is one event in the machine's
log and goes through ``MachineService.change`` (optimistic retries).
"""

from __future__ import annotations

from typing import Any

from ferry.errors import ConflictError, NotFoundError
from ferry.errors import ValidationError as FerryValidationError
from ferry.model import Machine, MachineState
from ferry.model.metadata import MAX_METADATA_KEYS, key_problem, value_problem
from ferry.server.machines_service import Decision, MachineService, make_event

__all__ = ["MachineLabels"]

_CORDONABLE = {MachineState.STARTED}


class MachineLabels:
    """Metadata and cordon of machines; every method blocks on the store."""

    def __init__(self, machines: MachineService) -> None:
        self.machines = machines

    def metadata(self, app_name: str, machine_id: str) -> dict[str, str]:
        return dict(self.machines.get(app_name, machine_id).config.metadata)

    def set_metadata(self, app_name: str, machine_id: str, key: str, value: str) -> None:
        """Set one key; ``ValidationError`` (400) for a key or value over the limits."""
        problem = key_problem(key) or value_problem(key, value)
        if problem:
            raise FerryValidationError(problem, hint="see docs/api.md for the metadata limits")

        def decide(m: Machine) -> Decision:
            _not_destroyed(m)
            if m.config.metadata.get(key) == value:
                return None
            metadata = {**m.config.metadata, key: value}
            if len(metadata) > MAX_METADATA_KEYS:
                raise FerryValidationError(
                    f"machine {m.id} already has {MAX_METADATA_KEYS} metadata keys, the limit",
                    hint="delete a key first",
                )
            return self._with_metadata(m, metadata, "set", key)

        self.machines.change(app_name, machine_id, decide)

    def delete_metadata(self, app_name: str, machine_id: str, key: str) -> None:
        """Remove one key; ``NotFoundError`` (404) when the machine has no such key."""

        def decide(m: Machine) -> Decision:
            _not_destroyed(m)
            if key not in m.config.metadata:
                raise NotFoundError(
                    f"machine {m.id} has no metadata key {key!r}",
                    hint="list its metadata with GET …/metadata",
                )
            metadata = {k: v for k, v in m.config.metadata.items() if k != key}
            return self._with_metadata(m, metadata, "delete", key)

        self.machines.change(app_name, machine_id, decide)

    def _with_metadata(
        self, m: Machine, metadata: dict[str, str], verb: str, key: str
    ) -> tuple[dict[str, Any], Any]:
        config = m.config.model_copy(update={"metadata": metadata})
        event = make_event(self.machines.clock, "metadata", verb, "user", key=key)
        return {"config": config}, event

    def cordon(self, app_name: str, machine_id: str) -> None:
        """Keep the edges from sending the machine new requests. Idempotent.

        ``ConflictError`` (409) unless the machine is started: a machine that
        is not serving has no traffic to take away.
        """

        def decide(m: Machine) -> Decision:
            if m.cordoned:
                return None
            if m.state not in _CORDONABLE:
                raise ConflictError(
                    f"machine {m.id} is {m.state.value}; only a started machine can be cordoned",
                    hint="start it first, or stop it instead of cordoning it",
                )
            event = make_event(self.machines.clock, "cordon", "cordoned", "user")
            return {"cordoned": True}, event

        self.machines.change(app_name, machine_id, decide)

    def uncordon(self, app_name: str, machine_id: str) -> None:
        """Let the edges route to the machine again. Idempotent."""

        def decide(m: Machine) -> Decision:
            if not m.cordoned:
                return None
            _not_destroyed(m)
            event = make_event(self.machines.clock, "cordon", "uncordoned", "user")
            return {"cordoned": False}, event

        self.machines.change(app_name, machine_id, decide)


def _not_destroyed(m: Machine) -> None:
    if m.state is MachineState.DESTROYED:
        raise ConflictError(f"machine {m.id} is destroyed", hint="create a new machine")
