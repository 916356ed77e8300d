"""The Ferry-only ``[postgres]`` section of an app: which database it uses and whether
that database's replicas follow the app (see docs/postgres.md, "Replicas that follow
the app"). The API stores it per app; durations are seconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ferry.model.duration import parse_duration
from ferry.model.names import app_name_problem

__all__ = ["DEFAULT_SCALE_IN_AFTER", "DEFAULT_SCALE_OUT_AFTER", "FollowPolicy"]

#: The autoscaler's own defaults (``AutoscalePolicy``), used when neither ``[postgres]``
#: nor ``[autoscale]`` names a window.
DEFAULT_SCALE_OUT_AFTER = 30.0
DEFAULT_SCALE_IN_AFTER = 300.0
_DAY = 86400.0


class FollowPolicy(BaseModel):
    """An app's link to its Postgres cluster and how the cluster's replicas follow it.

    ``database`` is the cluster's app name (the one ``ferry postgres attach`` named).
    ``replicas="follow"``: a replica is added in a region where the app has had a
    machine running for ``scale_out_after`` seconds, and removed ``scale_in_after``
    seconds after the app left it; ``"fixed"`` leaves the members alone. Removals never
    leave fewer than ``min_replicas`` replicas. Validation raises pydantic's
    ``ValidationError`` naming the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    database: str
    replicas: Literal["follow", "fixed"] = "follow"
    min_replicas: int = Field(default=0, ge=0, le=6)
    scale_out_after: float = DEFAULT_SCALE_OUT_AFTER
    scale_in_after: float = DEFAULT_SCALE_IN_AFTER

    @field_validator("database")
    @classmethod
    def _database_name(cls, value: str) -> str:
        problem = app_name_problem(value)
        if problem:
            raise ValueError(f"database {value!r} {problem}")
        return value

    @field_validator("scale_out_after", "scale_in_after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError('must be a duration such as "30s" or a number of seconds')
        try:
            seconds = parse_duration(value)
        except Exception as exc:
            raise ValueError(f'invalid duration {value!r}; write it like "30s" or "5m"') from exc
        if not 0 <= seconds <= _DAY:
            raise ValueError("must be between 0s and 24h")
        return seconds

    @property
    def follows(self) -> bool:
        """Whether the database's replicas follow the app."""
        return self.replicas == "follow"
