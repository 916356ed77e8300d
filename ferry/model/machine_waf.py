"""``config.waf`` (fly.toml ``[waf]``): the edge's web application firewall for an app.

A Ferry extension: Fly's edge has no WAF. The edge runs ModSecurity v3 with
the OWASP Core Rule Set 3.3 for every app whose ``mode`` is not ``off``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ferry.model.refusals import FlyConfigModel

__all__ = ["MAX_BODY_LIMIT", "WafConfig"]

#: The most request body bytes the edge will hold to inspect (1 MiB).
MAX_BODY_LIMIT = 1 << 20


class WafConfig(FlyConfigModel):
    """The WAF settings of an app.

    ``mode``: ``off`` (no inspection), ``detect`` (rules run, matches are
    recorded as events, nothing is blocked) or ``block`` (a request whose
    inbound anomaly score reaches ``inbound_threshold`` gets a 403).
    ``paranoia``: the CRS paranoia level, 1-4. ``exclude_rules``: CRS rule ids
    removed for this app. ``body_limit``: request body bytes inspected; a
    longer body is refused with 413 in ``block`` mode and inspected up to the
    limit in ``detect`` mode.
    """

    mode: Literal["off", "detect", "block"] = "off"
    paranoia: int = Field(default=1, ge=1, le=4)
    inbound_threshold: int = Field(default=5, ge=1, le=10000)
    outbound_threshold: int = Field(default=4, ge=1, le=10000)
    exclude_rules: list[int] = Field(default_factory=list, max_length=1000)
    body_limit: int = Field(default=128 * 1024, ge=0, le=MAX_BODY_LIMIT)

    @field_validator("exclude_rules")
    @classmethod
    def _rule_ids(cls, value: list[int]) -> list[int]:
        for rule_id in value:
            if not 1 <= rule_id <= 99_999_999:
                raise ValueError(f"exclude_rules: {rule_id} is not a rule id (1-99999999)")
        return sorted(set(value))

    @property
    def enabled(self) -> bool:
        return self.mode != "off"
