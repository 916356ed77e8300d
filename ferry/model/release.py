"""An app's releases: one per deploy, numbered 1, 2, 3 … (Ferry's own API, shaped after
``fly releases``).

A release is recorded ``running`` when a deploy starts and set ``complete`` or
``failed`` when it ends; only a ``running`` release changes status. ``config``
is the machine config the deploy applied (its image included), so a rollback
can apply it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ferry.model.machine import MachineConfig

__all__ = [
    "RELEASE_STATUSES",
    "NewRelease",
    "Release",
    "ReleaseStatus",
    "ReleaseStatusUpdate",
    "ReleaseStrategy",
]

ReleaseStatus = Literal["running", "complete", "failed"]
ReleaseStrategy = Literal["rolling", "immediate", "canary", "bluegreen"]
RELEASE_STATUSES: tuple[ReleaseStatus, ...] = ("running", "complete", "failed")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NewRelease(_Frozen):
    """The body of ``POST /v1/apps/{app}/releases``: what a deploy is about to do.

    ``image`` is the pinned reference (``registry/repo@sha256:…``) the
    machines run; ``description`` says why (``deploy``, ``rollback to v3``).
    """

    image: str = Field(min_length=1, max_length=512)
    strategy: ReleaseStrategy = "rolling"
    description: str = Field(default="deploy", max_length=200)
    config: MachineConfig | None = None


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
    config: MachineConfig | None = None
