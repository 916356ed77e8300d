"""``[waf]`` → ``WafConfig``: the edge's web application firewall for the app (Ferry's own).

Keys: ``mode`` (off | detect | block), ``paranoia`` (1-4),
``inbound_threshold``, ``exclude_rules`` (CRS rule
ids), ``body_limit`` (bytes, or a size such as "256k") and
``allowed_methods``. A Ferry section,
so an unknown key is an error (flyctl never reads it). See docs/waf.md.
"""

from __future__ import annotations

import re

from ferry.config.reader import Table, show
from ferry.model.machine_waf import (
    DEFAULT_ALLOWED_METHODS,
    MAX_BODY_LIMIT,
    METHOD_PATTERN,
    OUTBOUND_REFUSED,
    SCORE_RULE_ID,
    WafConfig,
)

__all__ = ["WAF_KEYS", "parse_waf"]

WAF_KEYS = (
    "mode",
    "paranoia",
    "inbound_threshold",
    "exclude_rules",
    "body_limit",
    "allowed_methods",
)
_SIZE = re.compile(r"^(\d+)\s*([kKmM]?)[bB]?$")


def parse_waf(table: Table | None) -> WafConfig | None:
    """The ``[waf]`` table, or None without one. Pure.

    Raises ``ConfigError`` (file, line, key) for an unknown key, a mode that is
    not off/detect/block, a paranoia outside 1-4, a threshold below 1, a rule
    id that is not a positive integer, or a body limit above 1 MiB.
    """
    if table is None:
        return None
    if "outbound_threshold" in table.data:
        raise table.error("outbound_threshold", "is not supported by Ferry", hint=OUTBOUND_REFUSED)
    table.check_keys(WAF_KEYS, strict=True)
    mode = table.choice("mode", ("off", "detect", "block"), "detect")
    return WafConfig(
        mode=mode,
        paranoia=table.integer("paranoia", 1, minimum=1, maximum=4),
        inbound_threshold=table.integer("inbound_threshold", 5, minimum=1, maximum=10000),
        exclude_rules=_rule_ids(table),
        body_limit=_body_limit(table),
        allowed_methods=_methods(table),
    )


def _methods(table: Table) -> list[str]:
    value = table.data.get("allowed_methods", list(DEFAULT_ALLOWED_METHODS))
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 32
        or not all(isinstance(m, str) and METHOD_PATTERN.match(m) for m in value)
    ):
        raise table.error(
            "allowed_methods",
            f"must be a list of upper-case HTTP methods, got {show(value)}",
            hint='e.g. ["GET", "HEAD", "POST"]',
        )
    return list(dict.fromkeys(value))


def _rule_ids(table: Table) -> list[int]:
    value = table.data.get("exclude_rules", [])
    if not isinstance(value, list) or len(value) > 1000:
        raise table.error("exclude_rules", f"must be a list of rule ids, got {show(value)}")
    for rule_id in value:
        if isinstance(rule_id, bool) or not isinstance(rule_id, int) or not rule_id >= 1:
            raise table.error(
                "exclude_rules", f"{show(rule_id)} is not a rule id", hint="e.g. [942100, 920350]"
            )
        if rule_id == SCORE_RULE_ID:
            raise table.error(
                "exclude_rules", f"{SCORE_RULE_ID} is Ferry's scoring rule, not a CRS rule"
            )
    return sorted(set(value))


def _body_limit(table: Table) -> int:
    value = table.data.get("body_limit", 128 * 1024)
    if isinstance(value, str):
        match = _SIZE.match(value.strip())
        if match is None:
            raise table.error(
                "body_limit", f'must be bytes or a size like "256k", got {show(value)}'
            )
        value = int(match.group(1)) * {"": 1, "k": 1024, "m": 1 << 20}[match.group(2).lower()]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BODY_LIMIT:
        raise table.error(
            "body_limit", f"must be 0 to {MAX_BODY_LIMIT} bytes (1 MiB), got {show(value)}"
        )
    return value
