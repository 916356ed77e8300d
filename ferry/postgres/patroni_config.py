"""Patroni's and etcd's settings for one Postgres machine, rendered from its environment.

This module runs in two places: in Ferry (its unit tests, and later ``ferry
postgres create``) and inside the Postgres image, where the entrypoint imports
it with the image's own ``/usr/bin/python3`` (Debian bookworm: Python 3.11).
So it imports the standard library only, and every function is pure.

Environment of a Postgres machine (``read_settings`` names the one that is wrong):

- ``FLY_PRIVATE_IP``      the machine's 6PN address: Postgres (5433), Patroni's REST API
                          and etcd advertise it (required)
- ``SU_PASSWORD``         password of ``flypgadmin``, the superuser Patroni uses (required)
- ``REPL_PASSWORD``       password of ``repluser``, for streaming replication (required)
- ``OPERATOR_PASSWORD``   password of the ``postgres`` role handed to the operator (required)
- ``PG_SCOPE``            the cluster's name in the DCS (default ``FLY_APP_NAME``, or ``postgres``)
- ``PG_NAME``             this member's name (default ``FLY_MACHINE_ID``, else the hostname)
- ``PG_DATA_DIR``         the data directory (default ``/data/postgresql``)
- ``ETCD_ENDPOINTS``      comma-separated ``http://host:2379`` of the DCS; when unset the
                          machine runs its own single etcd member (``ETCD_LOCAL=1`` implied)
- ``ETCD_LOCAL``          ``1``: run an etcd member in this machine too
- ``ETCD_INITIAL_CLUSTER`` ``name=http://addr:2380,…`` of all etcd members (default: this one)
- ``ETCD_DATA_DIR``       etcd's data directory (default ``/data/etcd``)
- ``PG_TTL``, ``PG_LOOP_WAIT``, ``PG_RETRY_TIMEOUT``  Patroni's timings (defaults 12/2/5 s;
                          Patroni's rule ``loop_wait + 2 * retry_timeout <= ttl`` is enforced)
- ``PG_SYNC``             ``1``: Patroni's synchronous mode (a commit waits for a replica)
- ``PG_SYNC_STRICT``      ``1`` (with ``PG_SYNC``): ``synchronous_mode_strict``, a commit never
                          goes unreplicated, even with no replica left (writes wait instead);
                          ``ferry postgres create --sync`` does not set it
- ``ETCD_HEARTBEAT_MS``, ``ETCD_ELECTION_MS``  etcd's heartbeat interval and election timeout
                          (defaults etcd's own 100/1000 ms; the election at least 5 heartbeats)
- ``PG_FOLLOWER``         ``1``: a replica that follows the app (``ferry.postgres.follow``):
                          tagged ``nofailover`` and ``nosync``, never primary nor sync replica
- ``FLY_REGION``          the member's region: with its name, set as the custom settings
                          ``ferry.region`` and ``ferry.machine_id`` (``SHOW ferry.region``),
                          so a client can tell which member answered, whatever the path
- ``PG_DISK_MB``          the size of the data directory's filesystem (the volume), in MB;
                          the entrypoint measures it at every start. Bounds the WAL kept
                          (``wal_limits``); unset: Postgres's own unbounded defaults

Why these timings (docs/postgres.md, "Failover"): the leader key lives ``ttl`` seconds
after the primary's last refresh (every ``loop_wait``), so a primary that stops
answering (a frozen host, a cut region) is replaced after at most ``ttl`` (12 s) plus
a promotion; ``retry_timeout`` (5 s) outlasts an etcd election on the emulated WAN
and a slow etcd answer on a busy host, so losing an etcd member does not demote a
healthy primary; a primary that cannot reach etcd gives up after
``loop_wait + 2 * retry_timeout`` (12 s), before its key expires and a replica can
take over. A primary whose machine died and was restarted hands its key over before
Patroni starts (``entrypoint.release_leader_key_if_mine``), so a kill -9 does not wait
for the ttl; ``primary_start_timeout`` 0 is Patroni's own version of that rule.

Passwords never appear in the rendered file: ``patroni_env`` passes them to
Patroni through its documented ``PATRONI_*_PASSWORD`` variables.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OPERATOR_USER",
    "PGPASS_PATH",
    "PG_BIN_DIR",
    "POSTGRES_PORT",
    "PROXY_PORT",
    "REPLICATION_USER",
    "REST_PORT",
    "SUPERUSER",
    "PostgresSettings",
    "SettingsError",
    "etcd_argv",
    "host_port",
    "patroni_config",
    "patroni_env",
    "read_settings",
    "url_host",
    "wal_limits",
]

PG_BIN_DIR = "/usr/lib/postgresql/15/bin"
PGPASS_PATH = "/var/lib/postgresql/.pgpass.patroni"
#: Postgres itself listens here (Fly's "Postgres port"); ``PROXY_PORT`` is each member's
#: forwarder to the current primary (``primary_proxy``, Fly's "proxy port").
POSTGRES_PORT = 5433
PROXY_PORT = 5432
REST_PORT = 8008
#: Patroni's keys in etcd are ``<NAMESPACE><scope>/…`` (``leader``, ``members/…``, ``sync``).
NAMESPACE = "/ferry/"
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
SUPERUSER = "flypgadmin"
REPLICATION_USER = "repluser"
OPERATOR_USER = "postgres"
PASSWORD_VARS = ("SU_PASSWORD", "REPL_PASSWORD", "OPERATOR_PASSWORD")


class SettingsError(ValueError):
    """The machine's environment cannot configure Postgres; the message names the variable."""


@dataclass(frozen=True)
class PostgresSettings:
    """What one member needs; ``etcd_endpoints`` always names at least one endpoint."""

    scope: str
    name: str
    private_ip: str
    data_dir: str
    etcd_endpoints: tuple[str, ...]
    etcd_local: bool
    etcd_initial_cluster: str
    etcd_data_dir: str
    ttl: int = 12
    loop_wait: int = 2
    retry_timeout: int = 5
    synchronous_mode: bool = False
    synchronous_mode_strict: bool = False
    etcd_heartbeat_ms: int = 100
    etcd_election_ms: int = 1000
    follower: bool = False
    disk_mb: int = 0  # the volume's size; 0: unknown, the WAL is not bounded by it
    region: str = ""


def wal_limits(disk_mb: int) -> dict[str, str]:
    """WAL settings that keep the WAL within a share of a ``disk_mb`` volume. Pure.

    Fly's users' most common Postgres outage is WAL filling the disk: a replica that
    went away keeps its replication slot, and the primary keeps every segment since.
    ``max_slot_wal_keep_size`` (a quarter of the disk, at least 128 MB) lets such a
    slot be invalidated instead (that replica stops streaming and has to be made
    again: one member less, not a primary that stops); ``max_wal_size`` (an eighth,
    64 MB to 1 GB, Postgres's default) bounds what accumulates between checkpoints.
    So a full disk is the data's doing, and fails the statement that extends a
    table with "No space left on device" rather than the WAL writer.
    ``disk_mb`` ≤ 0: no bounds (``{}``).
    """
    if disk_mb <= 0:
        return {}
    max_wal = max(64, min(1024, disk_mb // 8))
    return {
        "max_wal_size": f"{max_wal}MB",
        "min_wal_size": f"{max(32, min(80, max_wal // 2))}MB",
        "max_slot_wal_keep_size": f"{max(128, disk_mb // 4)}MB",
    }


def url_host(address: str) -> str:
    """``fdaa::3`` → ``[fdaa::3]``; an IPv4 address or a name unchanged (for URLs)."""
    return f"[{address}]" if ":" in address else address


def host_port(address: str, port: int) -> str:
    """``host:port`` as Patroni and etcd parse it (IPv6 in brackets)."""
    return f"{url_host(address)}:{port}"


def _member_name(text: str) -> str:
    # etcd and Patroni names end up in keys and URLs: keep them to a safe alphabet.
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in text)
    return cleaned.strip("-") or "member"


def _positive_int(env: Mapping[str, str], key: str, default: int, unit: str = "seconds") -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{key}={raw!r} is not a positive number of {unit}")
    return int(raw)


def _timings(env: Mapping[str, str]) -> dict[str, int]:
    """Patroni's and etcd's timings from the env, checked against both tools' own rules."""
    ttl = _positive_int(env, "PG_TTL", PostgresSettings.ttl)
    loop_wait = _positive_int(env, "PG_LOOP_WAIT", PostgresSettings.loop_wait)
    retry = _positive_int(env, "PG_RETRY_TIMEOUT", PostgresSettings.retry_timeout)
    if loop_wait + 2 * retry > ttl:
        # Patroni's rule: a primary cut off from the DCS must have demoted itself
        # before its key expires and another member can be promoted.
        raise SettingsError(
            f"PG_LOOP_WAIT + 2 * PG_RETRY_TIMEOUT = {loop_wait + 2 * retry} s exceeds"
            f" PG_TTL = {ttl} s: raise PG_TTL or lower the others"
        )
    heartbeat = _positive_int(env, "ETCD_HEARTBEAT_MS", PostgresSettings.etcd_heartbeat_ms, "ms")
    election = _positive_int(env, "ETCD_ELECTION_MS", PostgresSettings.etcd_election_ms, "ms")
    if election < 5 * heartbeat:
        raise SettingsError(
            f"ETCD_ELECTION_MS={election} is below 5 * ETCD_HEARTBEAT_MS={heartbeat}"
            " (etcd refuses to start): raise the election timeout"
        )
    return {
        "ttl": ttl,
        "loop_wait": loop_wait,
        "retry_timeout": retry,
        "etcd_heartbeat_ms": heartbeat,
        "etcd_election_ms": election,
    }


def read_settings(env: Mapping[str, str], hostname: str | None = None) -> PostgresSettings:
    """Settings from a machine's environment. Pure (``hostname`` given) or reads the hostname.

    Raises ``SettingsError`` naming the missing or malformed variable.
    """
    private_ip = env.get("FLY_PRIVATE_IP", "").strip()
    if not private_ip:
        raise SettingsError(
            "FLY_PRIVATE_IP is not set: run this image as a Ferry machine (it sets the 6PN address)"
        )
    try:
        ipaddress.ip_address(private_ip)
    except ValueError:
        raise SettingsError(f"FLY_PRIVATE_IP={private_ip!r} is not an IP address") from None
    for var in PASSWORD_VARS:
        if not env.get(var):
            raise SettingsError(f"{var} is not set: give it as a secret of the Postgres app")
    scope = _member_name(env.get("PG_SCOPE") or env.get("FLY_APP_NAME") or "postgres")
    name = _member_name(
        env.get("PG_NAME") or env.get("FLY_MACHINE_ID") or hostname or socket.gethostname()
    )
    endpoints = tuple(e.strip() for e in env.get("ETCD_ENDPOINTS", "").split(",") if e.strip())
    for endpoint in endpoints:
        if not endpoint.startswith(("http://", "https://")):
            raise SettingsError(f"ETCD_ENDPOINTS entry {endpoint!r} is not an http(s):// URL")
    etcd_local = env.get("ETCD_LOCAL", "") == "1" or not endpoints
    if not endpoints:
        endpoints = (f"http://{host_port(private_ip, ETCD_CLIENT_PORT)}",)
    initial = env.get("ETCD_INITIAL_CLUSTER", "").strip() or (
        f"{name}=http://{host_port(private_ip, ETCD_PEER_PORT)}"
    )
    sync = env.get("PG_SYNC", "") == "1"
    return PostgresSettings(
        scope=scope,
        name=name,
        private_ip=private_ip,
        data_dir=env.get("PG_DATA_DIR") or "/data/postgresql",
        etcd_endpoints=endpoints,
        etcd_local=etcd_local,
        etcd_initial_cluster=initial,
        etcd_data_dir=env.get("ETCD_DATA_DIR") or "/data/etcd",
        synchronous_mode=sync,
        synchronous_mode_strict=sync and env.get("PG_SYNC_STRICT", "") == "1",
        **_timings(env),
        follower=env.get("PG_FOLLOWER", "") == "1",
        disk_mb=_positive_int(env, "PG_DISK_MB", 0, "MB"),
        region=_member_name(env.get("FLY_REGION") or "unknown"),
    )


def pg_hba() -> list[str]:
    """Client authentication: ``postgres`` by peer on the socket, passwords (SCRAM) otherwise.

    Who may reach port 5432 at all is the private network's business (nftables);
    here every network login needs a password.
    """
    return [
        f"local all {OPERATOR_USER} peer",
        "local all all scram-sha-256",
        f"host replication {REPLICATION_USER} 0.0.0.0/0 scram-sha-256",
        f"host replication {REPLICATION_USER} ::/0 scram-sha-256",
        "host all all 0.0.0.0/0 scram-sha-256",
        "host all all ::/0 scram-sha-256",
    ]


def patroni_config(settings: PostgresSettings) -> dict[str, Any]:
    """Patroni's YAML configuration as a dict (written as JSON, which YAML reads). Pure.

    No passwords: see ``patroni_env``.
    """
    rest = host_port(settings.private_ip, REST_PORT)
    wildcard = "::" if ":" in settings.private_ip else "0.0.0.0"
    return {
        "scope": settings.scope,
        "namespace": NAMESPACE,
        "name": settings.name,
        "log": {"level": "INFO"},
        # "::" also takes IPv4 (and loopback) on Linux; Patroni does not accept "*" here.
        "restapi": {"listen": host_port(wildcard, REST_PORT), "connect_address": rest},
        "etcd3": {"hosts": [e.split("://", 1)[1] for e in settings.etcd_endpoints]},
        "bootstrap": {
            "dcs": {
                "ttl": settings.ttl,
                "loop_wait": settings.loop_wait,
                "retry_timeout": settings.retry_timeout,
                "maximum_lag_on_failover": 1048576,
                # A crashed primary restarted by its machine's restart policy hands its
                # key over at once (when a replica can take it) instead of coming back
                # as primary: a kill -9 ends in a failover, never in a race for the key.
                "primary_start_timeout": 0,
                "synchronous_mode": settings.synchronous_mode,
                "synchronous_mode_strict": settings.synchronous_mode_strict,
                "postgresql": {
                    "use_pg_rewind": True,
                    "use_slots": True,
                    "parameters": {
                        "wal_level": "replica",
                        "hot_standby": "on",
                        "wal_log_hints": "on",
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "wal_keep_size": "128MB",
                        # A replica whose primary died retries its WAL source this often
                        # (default 5 s): after a failover it reaches the new primary
                        # sooner, and in strict --sync mode the first commit waits for that.
                        "wal_retrieve_retry_interval": "1s",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
            "post_bootstrap": "/usr/local/bin/ferry-postgres-post-bootstrap",
        },
        "postgresql": {
            "listen": f"*:{POSTGRES_PORT}",
            "connect_address": host_port(settings.private_ip, POSTGRES_PORT),
            "data_dir": settings.data_dir,
            "bin_dir": PG_BIN_DIR,
            "pgpass": PGPASS_PATH,
            "authentication": {
                "superuser": {"username": SUPERUSER},
                "replication": {"username": REPLICATION_USER},
                "rewind": {"username": SUPERUSER},
            },
            "parameters": {
                "unix_socket_directories": "/var/run/postgresql",
                "password_encryption": "scram-sha-256",
                # The image leaves LLVM out (110 MB): no JIT.
                "jit": "off",
                # Local parameters apply at every start, so they follow `volumes extend`.
                **wal_limits(settings.disk_mb),
                # Who answered, whatever the path (the edge reaches members by their
                # host-local IPv4, so inet_server_addr() is no 6PN address to look up).
                "ferry.machine_id": settings.name,
                "ferry.region": settings.region,
            },
            "pg_hba": pg_hba(),
            # A member that cannot be rewound onto the new primary's timeline (pg_rewind
            # failed, or its timeline diverged past what rewind can mend) is cloned from
            # the leader afresh rather than left stopped: a failed-over member always
            # rejoins. What it had beyond the shared history was never acknowledged in
            # --sync mode (the synchronous replica that took over has every commit).
            "remove_data_directory_on_rewind_failure": True,
            "remove_data_directory_on_diverged_timelines": True,
        },
        "tags": {
            "nofailover": settings.follower,
            "nosync": settings.follower,
            "noloadbalance": False,
            "clonefrom": False,
        },
    }


def patroni_env(settings: PostgresSettings, env: Mapping[str, str]) -> dict[str, str]:
    """The environment Patroni runs with: a clean base plus its password variables. Pure."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/var/lib/postgresql",
        "LANG": "C.UTF-8",
        # Patroni runs through ``ferry.postgres.entrypoint --patroni`` (its leader-key guard).
        "PYTHONPATH": "/usr/local/lib/ferry-postgres",
        "PATRONI_SUPERUSER_PASSWORD": env["SU_PASSWORD"],
        "PATRONI_REPLICATION_PASSWORD": env["REPL_PASSWORD"],
        "PATRONI_REWIND_PASSWORD": env["SU_PASSWORD"],
        # Read by the post-bootstrap script (psql \getenv), never put on a command line.
        "OPERATOR_PASSWORD": env["OPERATOR_PASSWORD"],
    }


def etcd_argv(settings: PostgresSettings) -> list[str]:
    """The command line of this machine's etcd member (no secrets on it). Pure."""
    ip = settings.private_ip
    client = f"http://{host_port(ip, ETCD_CLIENT_PORT)}"
    peer = f"http://{host_port(ip, ETCD_PEER_PORT)}"
    loopback = f"http://{host_port('127.0.0.1', ETCD_CLIENT_PORT)}"
    listen_clients = client if ip == "127.0.0.1" else f"{client},{loopback}"
    return [
        "/usr/bin/etcd",
        "--name",
        settings.name,
        "--data-dir",
        settings.etcd_data_dir,
        "--listen-client-urls",
        listen_clients,
        "--advertise-client-urls",
        client,
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        settings.etcd_initial_cluster,
        "--initial-cluster-token",
        settings.scope,
        "--initial-cluster-state",
        "new",
        # Sized to the WAN between the members (plan.etcd_timings): etcd's defaults
        # (100/1000 ms) are meant for one data centre.
        "--heartbeat-interval",
        str(settings.etcd_heartbeat_ms),
        "--election-timeout",
        str(settings.etcd_election_ms),
    ]
