"""An app's releases: one per deploy, numbered 1, 2, 3 … (Ferry's own API, shaped after
``fly releases``).

A release is recorded ``running`` when a deploy starts and set ``complete`` or
``failed`` when it ends; only a ``running`` release changes status.
``configs`` maps each process group the deploy updated to the machine config it
applied there (its image included), so a rollback can give every group its own
config back. A release recorded before groups were tracked held one config: it
reads as the config of the group its ``fly_process_group`` metadata names
(``app`` without one) — see ``configs_of_legacy``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ferry.model.machine import MachineConfig

__all__ = [
    "RELEASE_STATUSES",
    "NewRelease",
    "Release",
    "ReleaseStatus",
    "ReleaseStatusUpdate",
    "ReleaseStrategy",
    "configs_of_legacy",
]

ReleaseStatus = Literal["running", "complete", "failed"]
ReleaseStrategy = Literal["rolling", "immediate", "canary", "bluegreen"]
RELEASE_STATUSES: tuple[ReleaseStatus, ...] = ("running", "complete", "failed")

#: A process group name. Not ``[processes]``'s stricter rule: without fly.toml a deploy
#: records the groups the machines' ``fly_process_group`` metadata names, whatever they are.
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
#: The group of a machine config without ``fly_process_group`` metadata (ferry.deploy.plan).
_DEFAULT_GROUP = "app"


def configs_of_legacy(config: MachineConfig) -> dict[str, MachineConfig]:
    """An old release's single config as ``configs``: the config of the one group it names.

    Not "every group": an old release of a two-group app recorded only its first
    group's config, and giving that to the other group would change what it runs.
    """
    return {config.metadata.get("fly_process_group") or _DEFAULT_GROUP: config}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NewRelease(_Frozen):
    """The body of ``POST /v1/apps/{app}/releases``: what a deploy is about to do.

    ``image`` is the pinned reference (``registry/repo@sha256:…``) the
    machines run; ``description`` says why (``deploy``, ``rollback to v3``);
    ``configs`` maps each process group the deploy updates to its machine config.
    A config whose ``fly_process_group`` metadata names another group than its
    key is refused: a rollback would give one group's command to the other.
    """

    image: str = Field(min_length=1, max_length=512)
    strategy: ReleaseStrategy = "rolling"
    description: str = Field(default="deploy", max_length=200)
    configs: dict[GroupName, MachineConfig] | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _groups_match_metadata(self) -> NewRelease:
        for group, config in (self.configs or {}).items():
            named = config.metadata.get("fly_process_group")
            if named is not None and named != group:
                raise ValueError(
                    f"configs.{group}: its metadata fly_process_group is {named!r}, not {group!r}"
                )
        return self


class ReleaseStatusUpdate(_Frozen):
    """The body of ``PATCH /v1/apps/{app}/releases/{version}``: how the deploy ended."""

    status: Literal["complete", "failed"]


class Release(_Frozen):
    """One recorded release of ``app_name``. ``user`` is the name of the token that
    deployed it; times are UTC."""

    app_name: str
    version: int = Field(ge=1)
    image: str
    status: ReleaseStatus
    strategy: ReleaseStrategy
    description: str = "deploy"
    user: str
    created_at: datetime
    updated_at: datetime
    configs: dict[str, MachineConfig] | None = None
