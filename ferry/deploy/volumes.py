"""Volumes for a deploy's machines, as ``fly deploy`` gives them from ``[[mounts]]``.

A machine that is updated keeps the volume it mounts (its data stays where
it is; the new config may move the mount path). A new machine gets a volume
named ``source`` in its region that no machine uses and this deploy has not
given yet, or a new one of ``initial_size``. A machine that mounts nothing
cannot start mounting a volume in an update (a volume is on one host, made
for the machine placed there): that is refused with what to do. Blocking
(creates volumes through the API).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ferry.config.app_config import AppConfig
from ferry.config.mounts import mount_for
from ferry.deploy.plan import DeployStep
from ferry.errors import ValidationError
from ferry.model import Machine, MachineConfig
from ferry.model.volume import MachineMount, Volume, VolumeState

__all__ = ["DeployVolumes", "VolumeClient"]

_USABLE = (VolumeState.CREATED, VolumeState.CREATING, VolumeState.EXTENDING)


class VolumeClient(Protocol):
    def list_volumes(self, app_name: str) -> list[Volume]: ...

    def create_volume(self, app_name: str, body: dict[str, Any]) -> Volume: ...


class DeployVolumes:
    """Gives each machine of one deploy its ``[[mounts]]`` volume."""

    def __init__(
        self, client: VolumeClient, app: str, app_config: AppConfig, machines: list[Machine]
    ) -> None:
        self._client = client
        self._app = app
        self._config = app_config
        self._machines = {m.id: m for m in machines}
        self._given: set[str] = set()
        self._volumes: list[Volume] | None = None

    def wrap(
        self, config_for: Callable[[DeployStep], MachineConfig]
    ) -> Callable[[DeployStep], MachineConfig]:
        """``config_for`` with each step's ``mounts`` filled in."""

        def with_mounts(step: DeployStep) -> MachineConfig:
            config = config_for(step)
            return config.model_copy(update={"mounts": self.mounts(step)})

        return with_mounts

    def mounts(self, step: DeployStep) -> list[MachineMount]:
        """The step's machine's mounts (creating a volume for a new machine if needed)."""
        wanted = mount_for(self._config.mounts, step.group)
        existing = self._machines.get(step.machine_id or "")
        if wanted is None:
            if existing is not None and existing.config.mounts:
                raise ValidationError(
                    f"machine {existing.id} mounts volume {existing.config.mounts[0].volume}, "
                    f"but fly.toml has no [[mounts]] for group {step.group!r}",
                    hint="keep the [[mounts]] section, or destroy the machine to stop using "
                    "its volume",
                )
            return []
        if existing is not None:
            if not existing.config.mounts:
                raise ValidationError(
                    f"machine {existing.id} has no volume, and fly.toml now mounts "
                    f"{wanted.source!r} at {wanted.destination}: a running machine cannot "
                    "gain one",
                    hint=f"destroy the group's machines (`ferry scale count {step.group}=0`), "
                    "then deploy again: new machines get volumes",
                )
            kept = existing.config.mounts[0]
            return [MachineMount(volume=kept.volume, path=wanted.destination, name=wanted.source)]
        volume = self._free_volume(wanted.source, step.region) or self._client.create_volume(
            self._app,
            {
                "name": wanted.source,
                "region": step.region,
                "size_gb": wanted.initial_size_gb,
                "snapshot_retention": wanted.snapshot_retention,
            },
        )
        self._given.add(volume.id)
        return [MachineMount(volume=volume.id, path=wanted.destination, name=wanted.source)]

    def _free_volume(self, name: str, region: str) -> Volume | None:
        if self._volumes is None:
            self._volumes = self._client.list_volumes(self._app)
        return next(
            (
                v
                for v in self._volumes
                if v.name == name
                and v.region == region
                and v.state in _USABLE
                and v.attached_machine_id is None
                and v.id not in self._given
            ),
            None,
        )
