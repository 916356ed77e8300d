"""Ferry's own ``[autoscale]`` section → ``AutoscalePolicy`` (see docs/autoscaling.md).

Reads one parsed table through ``Table`` and raises ``ConfigError`` naming the
file, the line and the key for the first problem.
"""

from __future__ import annotations

import re

from ferry.config.reader import Table, show
from ferry.model.autoscale import AutoscalePolicy

__all__ = ["AUTOSCALE_KEYS", "parse_autoscale"]

AUTOSCALE_KEYS = (
    "enabled",
    "regions",
    "min_per_region",
    "max_per_region",
    "max_total",
    "target_concurrency",
    "scale_out_after",
    "scale_in_after",
    "stop_idle_after",
    "destroy_after",
)
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{1,15}$")
_DAY_SECONDS = 86400.0


def parse_autoscale(table: Table | None) -> AutoscalePolicy | None:
    """``[autoscale]``, or ``None`` when the file has no such section.

    ``enabled`` defaults to true when the section exists. Checks that
    ``min_per_region <= max_per_region`` and that ``max_total`` covers
    ``min_per_region`` in every listed region. Pure.
    """
    if table is None:
        return None
    table.check_keys(AUTOSCALE_KEYS, strict=True)
    regions = table.string_list("regions") or []
    for code in regions:
        if not _REGION.fullmatch(code):
            raise table.error(
                "regions", f'has an invalid region code {show(code)}; use codes such as "ams"'
            )
    if len(set(regions)) != len(regions):
        raise table.error("regions", "lists a region twice")
    minimum = table.integer("min_per_region", 0, minimum=0, maximum=1000)
    maximum = table.integer("max_per_region", 3, minimum=0, maximum=1000)
    if minimum > maximum:
        raise table.error(
            "min_per_region", f"({minimum}) must not exceed max_per_region ({maximum})"
        )
    max_total = table.integer("max_total", 10, minimum=0, maximum=10000)
    if regions and max_total < minimum * len(regions):
        raise table.error(
            "max_total",
            f"({max_total}) must be at least min_per_region x regions "
            f"({minimum} x {len(regions)} = {minimum * len(regions)})",
            hint="raise max_total or lower min_per_region",
        )
    return AutoscalePolicy(
        enabled=table.boolean("enabled", True),
        regions=regions,
        min_per_region=minimum,
        max_per_region=maximum,
        max_total=max_total,
        target_concurrency=table.optional_integer("target_concurrency", minimum=1),
        scale_out_after=table.duration("scale_out_after", 30.0, maximum=_DAY_SECONDS),
        scale_in_after=table.duration("scale_in_after", 300.0, maximum=_DAY_SECONDS),
        stop_idle_after=table.duration("stop_idle_after", 300.0, maximum=_DAY_SECONDS),
        destroy_after=table.duration("destroy_after", 600.0, maximum=7 * _DAY_SECONDS),
    )
