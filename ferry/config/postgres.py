"""Ferry's own ``[postgres]`` section → ``FollowPolicy`` (see docs/postgres.md).

    [postgres]
    database = "my-db"        # the cluster `ferry postgres attach my-db -a APP` attached
    replicas = "follow"       # or "fixed" (the default): members stay as created
    min_replicas = 1          # removals never leave fewer replicas than this
    scale_out_after = "30s"   # default: [autoscale] scale_out_after, else 30s
    scale_in_after = "5m"     # default: [autoscale] scale_in_after, else 5m

A Ferry section (flyctl never reads it), so an unknown key is an error.
"""

from __future__ import annotations

from ferry.config.reader import Table, show
from ferry.model.autoscale import AutoscalePolicy
from ferry.model.names import app_name_problem
from ferry.model.postgres_follow import (
    DEFAULT_SCALE_IN_AFTER,
    DEFAULT_SCALE_OUT_AFTER,
    FollowPolicy,
)

__all__ = ["POSTGRES_KEYS", "parse_postgres"]

POSTGRES_KEYS = ("database", "replicas", "min_replicas", "scale_out_after", "scale_in_after")
_DAY_SECONDS = 86400.0
_MAX_REPLICAS = 6  # a cluster has at most 7 members, one of them the primary


def parse_postgres(table: Table | None, autoscale: AutoscalePolicy | None) -> FollowPolicy | None:
    """``[postgres]``, or ``None`` when the file has none. Pure.

    The windows default to ``autoscale``'s (the same file's ``[autoscale]``), else to
    the autoscaler's defaults. Raises ``ConfigError`` naming the line and key for a
    missing or bad ``database``, an unknown ``replicas`` mode, a negative or too large
    ``min_replicas``, a bad duration or an unknown key.
    """
    if table is None:
        return None
    table.check_keys(POSTGRES_KEYS, strict=True)
    database = table.optional_string("database")
    if database is None:
        raise table.fail(
            None,
            "needs database, the name of the Postgres app this app is attached to",
            hint='add database = "NAME" (see `ferry postgres attach NAME -a APP`)',
        )
    problem = app_name_problem(database)
    if problem:
        raise table.error("database", f"{show(database)} {problem}")
    mode = table.choice("replicas", ("follow", "fixed"), "fixed")
    out_default = autoscale.scale_out_after if autoscale else DEFAULT_SCALE_OUT_AFTER
    in_default = autoscale.scale_in_after if autoscale else DEFAULT_SCALE_IN_AFTER
    return FollowPolicy(
        database=database,
        replicas="follow" if mode == "follow" else "fixed",
        min_replicas=table.integer("min_replicas", 0, minimum=0, maximum=_MAX_REPLICAS),
        scale_out_after=table.duration("scale_out_after", out_default, maximum=_DAY_SECONDS),
        scale_in_after=table.duration("scale_in_after", in_default, maximum=_DAY_SECONDS),
    )
