"""What `ferry postgres create|status|attach` decide, as pure functions (no I/O).

- ``validate_create``: the members' regions of a new cluster, or a ``ValidationError``
  naming the bad name, region or size (checked before anything is created);
- ``new_credentials``: the three passwords a cluster's members share, as the app's secrets;
- ``member_env``: the environment that makes N machines one Patroni cluster on an
  N-member etcd (one member in each machine, found by its 6PN address), with the
  failover timings (``FAILOVER_TIMINGS``, ``etcd_timings``: docs/postgres.md, "Failover");
- ``attach_names``, ``database_url``, ``attach_sql``, ``detach_sql``: what ``attach``
  creates for an app and the URL it hands it;
- ``read_cluster``: Patroni's ``GET /cluster`` answer as rows for ``status``.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ferry.errors import ValidationError
from ferry.model.names import APP_NAME_RULE, app_name_problem
from ferry.model.sizes import preset
from ferry.net.latency import LatencyMatrix
from ferry.postgres.patroni_config import (
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    PROXY_PORT,
    REST_PORT,
    host_port,
)

__all__ = [
    "DATA_PATH",
    "MEMBER_METADATA",
    "VOLUME_NAME",
    "AttachNames",
    "CreateRequest",
    "MemberStatus",
    "attach_names",
    "attach_sql",
    "attachments_sql",
    "bootstrap_env",
    "database_url",
    "detach_sql",
    "etcd_timings",
    "freshest_view",
    "member_env",
    "new_credentials",
    "read_cluster",
    "validate_create",
]

VOLUME_NAME = "pg_data"
DATA_PATH = "/data"
#: ``config.metadata`` key marking a machine as a member of a Ferry Postgres cluster.
MEMBER_METADATA = "ferry-postgres"
MAX_MEMBERS = 7
ATTACHMENTS_TABLE = "ferry_attachments"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Patroni's timings every member gets (seconds): a dead primary's key expires at most
#: ``PG_TTL`` after its last refresh (every ``PG_LOOP_WAIT``); ``PG_RETRY_TIMEOUT`` outlasts
#: an etcd election on the WAN; ``loop_wait + 2 * retry_timeout <= ttl`` (Patroni's rule).
FAILOVER_TIMINGS = {"PG_TTL": "12", "PG_LOOP_WAIT": "2", "PG_RETRY_TIMEOUT": "5"}
#: etcd's own defaults (one data centre), the floor of ``etcd_timings``.
ETCD_MIN_HEARTBEAT_MS = 100
ETCD_MIN_ELECTION_MS = 1000


@dataclass(frozen=True)
class CreateRequest:
    """``ferry postgres create``'s options as given."""

    name: str
    region: str
    replicas: tuple[str, ...] = ()
    volume_size_gb: int = 1
    vm_size: str | None = None
    sync: bool = False


def validate_create(request: CreateRequest, known_regions: Sequence[str]) -> tuple[str, ...]:
    """The regions of the members (the primary's first), or ``ValidationError`` naming the
    problem: a bad app name, an unknown region, a size below 1 GB, an unknown VM size,
    or more than ``MAX_MEMBERS`` members."""
    problem = app_name_problem(request.name)
    if problem:
        raise ValidationError(f"database name {request.name!r} {problem}", hint=APP_NAME_RULE)
    regions = (request.region, *request.replicas)
    known = sorted(known_regions)
    for region in regions:
        if region not in known:
            raise ValidationError(
                f"unknown region {region!r}", hint=f"use one of: {', '.join(known)}"
            )
    if len(regions) > MAX_MEMBERS:
        raise ValidationError(
            f"{len(regions)} members asked for: a cluster has at most {MAX_MEMBERS}",
            hint="give fewer --replicas",
        )
    if request.volume_size_gb < 1:
        raise ValidationError(
            f"--volume-size {request.volume_size_gb}: a volume has at least 1 GB",
            hint="give --volume-size 1 or more",
        )
    if request.vm_size is not None:
        preset(request.vm_size)  # raises ValidationError listing the known sizes
    return regions


def new_credentials() -> dict[str, str]:
    """Fresh passwords for the superuser, replication and operator roles (app secrets)."""
    return {
        "SU_PASSWORD": secrets.token_urlsafe(24),
        "REPL_PASSWORD": secrets.token_urlsafe(24),
        "OPERATOR_PASSWORD": secrets.token_urlsafe(24),
    }


def etcd_timings(regions: Sequence[str], matrix: LatencyMatrix | None = None) -> tuple[int, int]:
    """etcd's ``(heartbeat interval, election timeout)`` in ms for members in ``regions``.

    The heartbeat is the longest round trip between two members' regions (rounded up
    to 50 ms), as etcd's tuning guide asks; the election timeout five heartbeats (the
    least etcd accepts; the emulated WAN has no jitter beyond the matrix). Never below
    etcd's defaults (100/1000 ms). A pair the matrix does not know counts as its
    longest round trip."""
    matrix = matrix or LatencyMatrix.default()
    worst = 0.0
    for i, a in enumerate(regions):
        for b in regions[i + 1 :]:
            try:
                worst = max(worst, matrix.rtt_ms(a, b))
            except ValidationError:
                worst = max(worst, max(matrix.median.values()))
    heartbeat = max(ETCD_MIN_HEARTBEAT_MS, 50 * math.ceil(worst / 50))
    return heartbeat, max(ETCD_MIN_ELECTION_MS, 5 * heartbeat)


def member_env(
    scope: str,
    primary_region: str,
    members: Sequence[tuple[str, str]],
    *,
    sync: bool,
    regions: Sequence[str] = (),
) -> dict[str, str]:
    """The env every member gets, from ``(machine id, private ip)`` of all members and
    their ``regions`` (for etcd's timings; none given: one data centre's).

    Each machine runs an etcd member (``ETCD_LOCAL=1``) and names all of them in
    ``ETCD_INITIAL_CLUSTER`` by 6PN address, learnt when the machines were created
    stopped. See ``bootstrap_env`` for what only the replicas get.
    """
    initial = ",".join(f"{mid}=http://{host_port(ip, ETCD_PEER_PORT)}" for mid, ip in members)
    endpoints = ",".join(f"http://{host_port(ip, ETCD_CLIENT_PORT)}" for _, ip in members)
    env = {
        "PG_SCOPE": scope,
        "PRIMARY_REGION": primary_region,
        "ETCD_LOCAL": "1",
        "ETCD_INITIAL_CLUSTER": initial,
        "ETCD_ENDPOINTS": endpoints,
        **FAILOVER_TIMINGS,
    }
    heartbeat, election = etcd_timings(regions)
    env["ETCD_HEARTBEAT_MS"], env["ETCD_ELECTION_MS"] = str(heartbeat), str(election)
    if sync:
        # Patroni's synchronous mode, not strict: only a replica known to be synchronous
        # may be promoted, so no failover loses an acknowledged commit; with no replica
        # streaming the primary commits alone rather than blocking (docs/postgres.md).
        env["PG_SYNC"] = "1"
    return env


def bootstrap_env(members: Sequence[tuple[str, str]], index: int) -> dict[str, str]:
    """What member ``index`` gets on top of ``member_env``: the replicas (every member but
    the first, the primary's region) wait for the first member's Patroni to be the
    running leader before they start theirs, so the primary's region bootstraps."""
    if index == 0:
        return {}
    return {"PG_BOOTSTRAP_LEADER": f"http://{host_port(members[0][1], REST_PORT)}"}


@dataclass(frozen=True)
class AttachNames:
    """The database and user ``attach`` makes for an app (Fly: both named after it)."""

    database: str
    user: str


def attach_names(app: str, database: str | None = None) -> AttachNames:
    """``my-app`` → database and user ``my_app``; ``ValidationError`` for a bad ``database``."""
    user = app.replace("-", "_")
    # Postgres reserves role names that start with pg_ (``pg-replay`` → ``app_pg_replay``).
    if not _IDENTIFIER.fullmatch(user) or user.startswith("pg_"):
        user = f"app_{user}"[:63]
    name = database or user
    if not _IDENTIFIER.fullmatch(name):
        raise ValidationError(
            f"database name {name!r} is not a plain identifier",
            hint="use lowercase letters, digits and '_', starting with a letter",
        )
    return AttachNames(database=name, user=user)


def database_url(user: str, password: str, host: str, database: str) -> str:
    """``postgres://user:password@host:5432/database`` (5432: any member's forwarder to
    the primary) with its parts escaped."""
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"postgres://{credentials}@{host}:{PROXY_PORT}/{quote(database, safe='')}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def attach_sql(app: str, names: AttachNames, password: str) -> str:
    """The psql script (fed on stdin, never on a command line) that records the
    attachment, makes or re-enables the user with ``password`` and makes its database.
    Fails (ON_ERROR_STOP) when ``app`` is already attached: nothing is changed then."""
    user, db = names.user, names.database
    return "\n".join(
        [
            f"CREATE TABLE IF NOT EXISTS {ATTACHMENTS_TABLE} (app text PRIMARY KEY,"
            " username text NOT NULL, database text NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now());",
            f"INSERT INTO {ATTACHMENTS_TABLE} (app, username, database)"
            f" VALUES ({_literal(app)}, {_literal(user)}, {_literal(db)});",
            f"SELECT format('CREATE ROLE %I', {_literal(user)}) WHERE NOT EXISTS"
            f" (SELECT FROM pg_roles WHERE rolname = {_literal(user)}) \\gexec",
            f"ALTER ROLE {_ident(user)} LOGIN PASSWORD {_literal(password)};",
            f"SELECT format('CREATE DATABASE %I OWNER %I', {_literal(db)}, {_literal(user)})"
            f" WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {_literal(db)}) \\gexec",
            f"GRANT ALL ON DATABASE {_ident(db)} TO {_ident(user)};",
            "",
        ]
    )


def detach_sql(app: str) -> str:
    """Revoke the app's login (its database stays, as on Fly) and forget the attachment."""
    return "\n".join(
        [
            f"SELECT format('ALTER ROLE %I NOLOGIN PASSWORD NULL', username)"
            f" FROM {ATTACHMENTS_TABLE} WHERE app = {_literal(app)} \\gexec",
            f"DELETE FROM {ATTACHMENTS_TABLE} WHERE app = {_literal(app)};",
            "",
        ]
    )


def attachments_sql() -> str:
    """One ``app|user|database`` line per attached app (none when nothing was attached)."""
    return (
        f"SELECT to_regclass({_literal(ATTACHMENTS_TABLE)}) IS NOT NULL AS present \\gset\n"
        f"\\if :present\nSELECT app, username, database FROM {ATTACHMENTS_TABLE} ORDER BY app;\n"
        "\\endif\n"
    )


@dataclass(frozen=True)
class MemberStatus:
    """One row of ``status``: Patroni's view of a member."""

    name: str
    role: str  # primary | replica | sync replica
    state: str
    host: str
    timeline: int | None
    lag_bytes: int | None


_ROLES = {"leader": "primary", "master": "primary", "primary": "primary"}


def freshest_view(views: Sequence[list[MemberStatus]]) -> list[MemberStatus]:
    """Of several members' answers to ``/cluster``, the one to show: a view with a
    running primary before one without, then the newest timeline, then the most
    members; the first of equals. A member that was cut off (a partition just
    healed) may still answer from the DCS state it last saw. Pure; ``views`` not empty."""

    def rank(view: list[MemberStatus]) -> tuple[bool, int, int]:
        running = any(r.role == "primary" and r.state == "running" for r in view)
        newest = max((r.timeline for r in view if r.timeline is not None), default=-1)
        return running, newest, len(view)

    return max(views, key=rank)  # max keeps the first of equal ranks


def read_cluster(answer: Mapping[str, Any]) -> list[MemberStatus]:
    """Patroni's ``/cluster`` JSON as rows, primary first. Unknown fields are ignored;
    a lag Patroni reports as ``"unknown"`` becomes ``None``."""
    rows = []
    for member in answer.get("members") or []:
        role = str(member.get("role", ""))
        lag = member.get("lag")
        timeline = member.get("timeline")
        rows.append(
            MemberStatus(
                name=str(member.get("name", "")),
                role=_ROLES.get(role, "sync replica" if role == "sync_standby" else "replica"),
                state=str(member.get("state", "")),
                host=str(member.get("host", "")),
                timeline=timeline if isinstance(timeline, int) else None,
                lag_bytes=lag if isinstance(lag, int) else (0 if role in _ROLES else None),
            )
        )
    return sorted(rows, key=lambda r: (r.role != "primary", r.name))
