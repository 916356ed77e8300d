"""The Ferry-only ``[autoscale]`` policy of an app, as fly.toml writes it and the API stores it.

Durations are kept in seconds. The API accepts them as numbers or as
duration strings (``"30s"``, ``"5m"``), like fly.toml does.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ferry.model.duration import parse_duration

__all__ = ["AutoscalePolicy"]


class AutoscalePolicy(BaseModel):
    """How the control plane may add and remove an app's machines, region by region.

    ``regions`` empty means "the regions the app is deployed in".
    ``target_concurrency`` ``None`` means "the soft_limit of the app's first
    service" (20 when it has none). ``enabled=False`` keeps only Fly's idle
    autostop. Validation raises pydantic's ``ValidationError`` naming the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    regions: list[str] = Field(default_factory=list)
    min_per_region: int = Field(default=0, ge=0, le=1000)
    max_per_region: int = Field(default=3, ge=0, le=1000)
    max_total: int = Field(default=10, ge=0, le=10000)
    target_concurrency: int | None = Field(default=None, ge=1)
    scale_out_after: float = 30.0
    scale_in_after: float = 300.0
    stop_idle_after: float = 300.0
    destroy_after: float = 600.0

    @field_validator(
        "scale_out_after", "scale_in_after", "stop_idle_after", "destroy_after", mode="before"
    )
    @classmethod
    def _duration(cls, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError('must be a duration such as "30s" or a number of seconds')
        try:
            return parse_duration(value)
        except Exception as exc:
            raise ValueError(f'invalid duration {value!r}; write it like "30s" or "5m"') from exc

    @field_validator("regions")
    @classmethod
    def _region_codes(cls, value: list[str]) -> list[str]:
        for code in value:
            if not code or not code.replace("-", "").isalnum() or code != code.lower():
                raise ValueError(f"invalid region code {code!r}; use codes such as ams or iad")
        if len(set(value)) != len(value):
            raise ValueError("lists a region twice")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalePolicy:
        if self.min_per_region > self.max_per_region:
            raise ValueError(
                f"min_per_region ({self.min_per_region}) must not exceed "
                f"max_per_region ({self.max_per_region})"
            )
        if self.regions and self.max_total < self.min_per_region * len(self.regions):
            raise ValueError(
                f"max_total ({self.max_total}) is below min_per_region x regions "
                f"({self.min_per_region} x {len(self.regions)})"
            )
        return self

    def target_for(self, soft_limit: int | None) -> int:
        """The concurrency one machine should carry: the policy's, else ``soft_limit``, else 20."""
        return self.target_concurrency or soft_limit or 20
