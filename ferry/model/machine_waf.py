"""``config.waf`` (fly.toml ``[waf]``): the edge's web application firewall for an app.

A Ferry extension: Fly's edge has no WAF. The edge runs ModSecurity v3 with
the OWASP Core Rule Set 3.3 for every app whose ``mode`` is not ``off``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ferry.model.refusals import FlyConfigModel

__all__ = [
    "DEFAULT_ALLOWED_METHODS",
    "MAX_BODY_LIMIT",
    "METHOD_PATTERN",
    "OUTBOUND_REFUSED",
    "SCORE_RULE_ID",
    "WafAction",
    "WafConfig",
    "WafEvent",
]

#: Methods CRS rule 911100 lets through. CRS 3.3's own default is GET HEAD POST
#: OPTIONS; Ferry adds PUT PATCH DELETE, which the APIs it hosts use.
DEFAULT_ALLOWED_METHODS = ("GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE")
#: Ferry's own last rule of every rule set (phase 5, every transaction): logs the
#: inbound anomaly score as its ``logdata``. libmodsecurity's API exposes no TX
#: variables, so this is how the score is read; it is not a match and never in an
#: event's ids, and ``exclude_rules`` may not name it.
SCORE_RULE_ID = 99901

#: What ``allowed_methods`` accepts: an upper-case HTTP method token.
METHOD_PATTERN = re.compile(r"^[A-Z]{1,20}$")

#: The most request body bytes the edge will hold to inspect (1 MiB).
MAX_BODY_LIMIT = 1 << 20


#: Why ``outbound_threshold`` is refused (fly.toml and the API say it by name).
OUTBOUND_REFUSED = (
    "the edge does not inspect response bodies (phase 4), where the Core Rule Set scores "
    "outbound anomalies, so an outbound threshold would have no effect"
)


class WafConfig(FlyConfigModel):
    """The WAF settings of an app.

    ``mode``: ``off`` (no inspection), ``detect`` (rules run, matches are
    recorded as events, nothing is blocked) or ``block`` (a request whose
    inbound anomaly score reaches ``inbound_threshold`` gets a 403).
    ``paranoia``: the CRS paranoia level, 1-4. ``exclude_rules``: CRS rule ids
    removed for this app. ``body_limit``: request body bytes inspected; a
    longer body is refused with 413 in ``block`` mode and inspected up to the
    limit in ``detect`` mode. ``allowed_methods``: the methods CRS rule 911100
    lets through (CRS's ``tx.allowed_methods``). ``outbound_threshold`` is refused.
    """

    refused_fields: ClassVar[Mapping[str, str]] = {"outbound_threshold": OUTBOUND_REFUSED}

    mode: Literal["off", "detect", "block"] = "off"
    paranoia: int = Field(default=1, ge=1, le=4)
    inbound_threshold: int = Field(default=5, ge=1, le=10000)
    exclude_rules: list[int] = Field(default_factory=list, max_length=1000)
    body_limit: int = Field(default=128 * 1024, ge=0, le=MAX_BODY_LIMIT)
    allowed_methods: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_METHODS), min_length=1, max_length=32
    )

    @field_validator("allowed_methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        for method in value:
            if not METHOD_PATTERN.match(method):
                raise ValueError(
                    f"allowed_methods: {method!r} is not an HTTP method (upper-case letters)"
                )
        return list(dict.fromkeys(value))

    @field_validator("exclude_rules")
    @classmethod
    def _rule_ids(cls, value: list[int]) -> list[int]:
        for rule_id in value:
            if not 1 <= rule_id <= 99_999_999:
                raise ValueError(f"exclude_rules: {rule_id} is not a rule id (1-99999999)")
            if rule_id == SCORE_RULE_ID:
                raise ValueError(
                    f"exclude_rules: {SCORE_RULE_ID} is Ferry's own scoring rule, not a CRS rule"
                )
        return sorted(set(value))

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


WafAction = Literal["blocked", "detected", "allowed"]


class WafEvent(BaseModel):
    """A request that matched at least one WAF rule (or was refused by the WAF).

    ``action``: ``blocked`` (the edge answered ``status``, 403 or 413),
    ``detected`` (detect mode: forwarded), ``allowed`` (block mode, under the
    threshold: forwarded). ``rule_ids``: every rule that matched, in order;
    ``anomaly_score``: the CRS inbound anomaly score. ``path``: the request
    target as sent (at most 2048 characters).
    """

    model_config = ConfigDict(extra="forbid")

    app: str = Field(min_length=1, max_length=63)
    region: str = Field(default="", max_length=63)
    request_id: str = Field(min_length=1, max_length=128)
    time: datetime
    client_ip: str = Field(max_length=64)
    method: str = Field(max_length=32)
    path: str = Field(max_length=2048)
    action: WafAction
    status: int = Field(default=0, ge=0, le=599)
    anomaly_score: int = Field(default=0, ge=0)
    rule_ids: list[int] = Field(default_factory=list, max_length=2000)
