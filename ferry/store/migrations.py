"""Numbered schema migrations, applied in order when a store opens.

Each migration is a list of SQL statements (or, where SQL cannot say it, a
function of the connection); ``schema_version`` records the
highest number applied. Applying is idempotent and runs in one transaction,
so a crash mid-way leaves the previous version intact. Never edit a released
migration: append a new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from sqlalchemy import Connection, text

from ferry.store.sixpn_migration import address_existing_machines

__all__ = ["MIGRATIONS", "apply_migrations", "current_version"]

Step = str | Callable[[Connection], None]

MIGRATIONS: Final[list[tuple[int, list[Step]]]] = [
    (
        1,
        [
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            "INSERT INTO counters (name, value) VALUES ('resource_version', 1)",
            """CREATE TABLE tokens (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                token_sha256 TEXT NOT NULL UNIQUE,
                created_at REAL NOT NULL
            )""",
            "CREATE TABLE orgs (slug TEXT PRIMARY KEY, name TEXT NOT NULL)",
            "INSERT INTO orgs (slug, name) VALUES ('personal', 'Personal')",
            """CREATE TABLE apps (
                name TEXT PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                org_slug TEXT NOT NULL REFERENCES orgs(slug),
                status TEXT NOT NULL,
                network TEXT NOT NULL,
                created_at REAL NOT NULL
            )""",
            """CREATE TABLE hosts (
                id TEXT PRIMARY KEY,
                region TEXT NOT NULL,
                address TEXT NOT NULL,
                cpus INTEGER NOT NULL,
                memory_mb INTEGER NOT NULL,
                machine_subnet TEXT NOT NULL,
                status TEXT NOT NULL,
                last_heartbeat REAL NOT NULL,
                registered_at REAL NOT NULL
            )""",
            """CREATE TABLE machines (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                app_name TEXT NOT NULL,
                region TEXT NOT NULL,
                host_id TEXT NOT NULL,
                instance_id TEXT NOT NULL,
                private_ip TEXT NOT NULL,
                config TEXT NOT NULL,
                image_ref TEXT NOT NULL,
                desired_state TEXT NOT NULL,
                state TEXT NOT NULL,
                exit_code INTEGER,
                restart_count INTEGER NOT NULL DEFAULT 0,
                restart_generation INTEGER NOT NULL DEFAULT 0,
                pending_signal TEXT,
                checks TEXT NOT NULL DEFAULT '[]',
                revision INTEGER NOT NULL,
                resource_version INTEGER NOT NULL,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            "CREATE INDEX machines_by_host ON machines (host_id, resource_version)",
            "CREATE INDEX machines_by_app ON machines (app_name, created_at)",
            """CREATE UNIQUE INDEX machines_live_ip ON machines (host_id, private_ip)
                WHERE state != 'destroyed'""",
            """CREATE TABLE events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                machine_id TEXT NOT NULL,
                id TEXT NOT NULL,
                type TEXT NOT NULL,
                status TEXT NOT NULL,
                source TEXT NOT NULL,
                timestamp INTEGER NOT NULL,
                request TEXT NOT NULL DEFAULT '{}'
            )""",
            "CREATE INDEX events_by_machine ON events (machine_id, seq)",
            """CREATE TABLE logs (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                machine_id TEXT NOT NULL,
                line TEXT NOT NULL
            )""",
            "CREATE INDEX logs_by_machine ON logs (machine_id, seq)",
        ],
    ),
    (
        2,
        [
            """CREATE TABLE autoscale_policies (
                app_name TEXT PRIMARY KEY,
                policy TEXT NOT NULL,
                updated_at REAL NOT NULL
            )""",
        ],
    ),
    (
        3,
        [
            # The signal/timeout of a pending stop request (JSON of StopOverride);
            # NULL for every existing machine, which then stops by its config.
            "ALTER TABLE machines ADD COLUMN stop_override TEXT",
        ],
    ),
    (
        4,
        [
            # Fly's cordon: a cordoned machine gets no new requests from the edges.
            "ALTER TABLE machines ADD COLUMN cordoned INTEGER NOT NULL DEFAULT 0",
            # One lease per machine (fly-go MachineLeaseData); an expired row is as good as none.
            """CREATE TABLE leases (
                machine_id TEXT PRIMARY KEY,
                nonce TEXT NOT NULL,
                owner TEXT NOT NULL,
                description TEXT NOT NULL,
                version TEXT NOT NULL,
                expires_at INTEGER NOT NULL
            )""",
            # Every config a machine had, by version (its instance_id then), for GET …/versions.
            """CREATE TABLE machine_versions (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                machine_id TEXT NOT NULL,
                version TEXT NOT NULL,
                config TEXT NOT NULL,
                created_at REAL NOT NULL,
                UNIQUE (machine_id, version)
            )""",
            "INSERT INTO machine_versions (machine_id, version, config, created_at) "
            "SELECT id, instance_id, config, updated_at FROM machines ORDER BY created_at, id",
        ],
    ),
    (
        5,
        [
            # One row per deploy of an app (`ferry releases`); config is the JSON
            # MachineConfig the deploy applied, so a rollback can apply it again.
            """CREATE TABLE releases (
                app_name TEXT NOT NULL,
                version INTEGER NOT NULL,
                image TEXT NOT NULL,
                status TEXT NOT NULL,
                strategy TEXT NOT NULL,
                description TEXT NOT NULL,
                user_name TEXT NOT NULL,
                config TEXT,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL,
                PRIMARY KEY (app_name, version)
            )""",
        ],
    ),
    (
        6,
        [
            # The placement view (ferry.server.capacity_view) catches up on the
            # machines written since the version it knows; the epoch counts the
            # writes a delta cannot express (hosts registered or up/down, apps
            # deleted or marked destroying), which make it rebuild.
            "CREATE INDEX machines_by_version ON machines (resource_version)",
            "INSERT INTO counters (name, value) VALUES ('placement_epoch', 1)",
        ],
    ),
    (
        7,
        [
            # A release's machine config per process group (JSON {group: MachineConfig}),
            # so a rollback gives workers their own command back. Older rows keep their
            # single `config` (read as the config of the group it names).
            "ALTER TABLE releases ADD COLUMN configs TEXT",
        ],
    ),
    (
        8,
        [
            # Organizations get members (by email, with a role) and invitations; the
            # tokens table of migration 1 gets its scope. Secrets are stored as
            # SHA-256 digests only (tokens.token_sha256, invitations.secret_sha256).
            "ALTER TABLE orgs ADD COLUMN created_at REAL NOT NULL DEFAULT 0",
            """CREATE TABLE members (
                org_slug TEXT NOT NULL REFERENCES orgs(slug),
                email TEXT NOT NULL,
                role TEXT NOT NULL,
                joined_at REAL NOT NULL,
                PRIMARY KEY (org_slug, email)
            )""",
            """CREATE TABLE invitations (
                id TEXT PRIMARY KEY,
                org_slug TEXT NOT NULL REFERENCES orgs(slug),
                email TEXT NOT NULL,
                role TEXT NOT NULL,
                secret_sha256 TEXT NOT NULL UNIQUE,
                created_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                accepted_at REAL
            )""",
            "ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'org'",
            "ALTER TABLE tokens ADD COLUMN org_slug TEXT",
            "ALTER TABLE tokens ADD COLUMN app_name TEXT",
            "ALTER TABLE tokens ADD COLUMN email TEXT",
            "ALTER TABLE tokens ADD COLUMN host_id TEXT",
            "ALTER TABLE tokens ADD COLUMN region TEXT",
            "ALTER TABLE tokens ADD COLUMN expires_at REAL",
            "ALTER TABLE tokens ADD COLUMN revoked_at REAL",
            "CREATE INDEX tokens_by_org ON tokens (org_slug)",
        ],
    ),
    (
        9,
        [
            # The audit trail: one row per change or refused attempt, appended by the
            # API (ferry.server.audit). No request bodies, no secrets. The triggers make
            # the table append-only: nothing in Ferry updates or deletes a record.
            """CREATE TABLE audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at REAL NOT NULL,
                org_slug TEXT,
                actor TEXT NOT NULL,
                token_id TEXT,
                method TEXT NOT NULL,
                route TEXT NOT NULL,
                target TEXT NOT NULL,
                source TEXT NOT NULL,
                status INTEGER NOT NULL,
                outcome TEXT NOT NULL
            )""",
            "CREATE INDEX audit_by_org ON audit (org_slug, id)",
            """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
            """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
        ],
    ),
    (
        10,
        [
            # App secrets, sealed with AES-256-GCM by the control plane's key (ferry.secrets):
            # the value exists here only as ciphertext; digest is a keyed HMAC. version is
            # the app's counter at the row's last change; secret_versions.deployed is what
            # the app's machines were last rolled to (staged = version > deployed).
            """CREATE TABLE secrets (
                app_name TEXT NOT NULL REFERENCES apps(name),
                name TEXT NOT NULL,
                ciphertext BLOB NOT NULL,
                nonce BLOB NOT NULL,
                key_id TEXT NOT NULL,
                digest TEXT NOT NULL,
                version INTEGER NOT NULL,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL,
                PRIMARY KEY (app_name, name)
            )""",
            """CREATE TABLE secret_versions (
                app_name TEXT PRIMARY KEY REFERENCES apps(name),
                version INTEGER NOT NULL,
                deployed INTEGER NOT NULL
            )""",
        ],
    ),
    (
        11,
        [
            # Certificates by ACME, one row per host name (a name belongs to one app). The
            # private key is sealed by the control plane's secrets key (key_*: ciphertext,
            # nonce, key id, keyed digest), never stored plain; the chain is public.
            # challenges: JSON of the order in flight (tokens, key authorizations: public).
            """CREATE TABLE certificates (
                hostname TEXT PRIMARY KEY,
                app_name TEXT NOT NULL REFERENCES apps(name),
                status TEXT NOT NULL,
                chain_pem BLOB,
                key_ciphertext BLOB,
                key_nonce BLOB,
                key_key_id TEXT,
                key_digest TEXT,
                not_before REAL,
                not_after REAL,
                last_error TEXT NOT NULL,
                failures INTEGER NOT NULL,
                next_attempt REAL,
                challenges TEXT NOT NULL,
                version INTEGER NOT NULL,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            "CREATE INDEX certificates_by_app ON certificates (app_name, hostname)",
            """CREATE TABLE acme_accounts (
                directory_url TEXT PRIMARY KEY,
                key_ciphertext BLOB NOT NULL,
                key_nonce BLOB NOT NULL,
                key_key_id TEXT NOT NULL,
                key_digest TEXT NOT NULL,
                uri TEXT NOT NULL,
                created_at REAL NOT NULL
            )""",
            "INSERT INTO counters (name, value) VALUES ('certificates', 0)",
        ],
    ),
    (
        12,
        [
            # WAF events the edges report (ferry.store.sqlite_waf): one row per request that
            # matched a rule; ``event`` is its JSON. Kept per app up to a bound (newest win).
            """CREATE TABLE waf_events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                app_name TEXT NOT NULL,
                at REAL NOT NULL,
                event TEXT NOT NULL
            )""",
            "CREATE INDEX waf_events_by_app ON waf_events (app_name, at)",
        ],
    ),
    (
        13,
        [
            # 6PN (ferry.net.sixpn): every organization gets its network number and every
            # host its host number (1, 2, … in the order they were made); the machines'
            # host-local IPv4 becomes host_ip, and private_ip is the 6PN address again,
            # as on Fly, given to every live machine (address_existing_machines).
            "ALTER TABLE orgs ADD COLUMN sixpn_network INTEGER NOT NULL DEFAULT 0",
            "UPDATE orgs SET sixpn_network = "
            "(SELECT COUNT(*) FROM orgs AS o WHERE o.rowid <= orgs.rowid)",
            "CREATE UNIQUE INDEX orgs_by_sixpn ON orgs (sixpn_network)",
            "ALTER TABLE hosts ADD COLUMN sixpn_host INTEGER NOT NULL DEFAULT 0",
            "UPDATE hosts SET sixpn_host = "
            "(SELECT COUNT(*) FROM hosts AS h WHERE h.rowid <= hosts.rowid)",
            "CREATE UNIQUE INDEX hosts_by_sixpn ON hosts (sixpn_host)",
            "ALTER TABLE machines RENAME COLUMN private_ip TO host_ip",
            "ALTER TABLE machines ADD COLUMN private_ip TEXT NOT NULL DEFAULT ''",
            address_existing_machines,
            """CREATE UNIQUE INDEX machines_live_sixpn ON machines (private_ip)
                WHERE state != 'destroyed'""",
        ],
    ),
    (
        14,
        [
            # The WireGuard mesh (ferry.store.sqlite_mesh): hosts and edges with their public
            # keys and endpoints; ``number`` is the host field of the node's 6PN address in
            # the platform's network 0. Keys and endpoints are one node's each.
            """CREATE TABLE mesh_nodes (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                region TEXT NOT NULL,
                number INTEGER NOT NULL UNIQUE,
                public_key TEXT NOT NULL UNIQUE,
                endpoint TEXT NOT NULL UNIQUE,
                updated_at REAL NOT NULL
            )""",
            "INSERT INTO counters (name, value) VALUES ('mesh', 0)",
        ],
    ),
    (
        15,
        [
            # Join tokens (ferry.store.sqlite_join): the operator's one-time consent for a
            # server to join as a host. Only the SHA-256 digest of the secret is kept.
            """CREATE TABLE join_tokens (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                region TEXT,
                digest TEXT NOT NULL,
                created_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                used_at REAL,
                used_by TEXT
            )""",
        ],
    ),
    (
        16,
        [
            # Developers' WireGuard peers (ferry.store.sqlite_wireguard): public keys only.
            # ``number`` is the machine field of the peer's 6PN address in host 0 of its
            # organization's network (ferry.net.peer_gateway.peer_prefix).
            """CREATE TABLE wireguard_peers (
                org_slug TEXT NOT NULL,
                name TEXT NOT NULL,
                region TEXT NOT NULL,
                number INTEGER NOT NULL,
                public_key TEXT NOT NULL UNIQUE,
                created_at REAL NOT NULL,
                PRIMARY KEY (org_slug, name),
                UNIQUE (org_slug, number)
            )""",
        ],
    ),
    (
        17,
        [
            # Flycast addresses (ferry.store.sqlite_flycast): an app's private IPv6 that the
            # edges proxy. ``number`` is its place in its network's Flycast /80
            # (ferry.net.flycast.flycast_address).
            """CREATE TABLE flycast_ips (
                address TEXT PRIMARY KEY,
                app_name TEXT NOT NULL,
                org_slug TEXT NOT NULL,
                network INTEGER NOT NULL,
                number INTEGER NOT NULL,
                created_at REAL NOT NULL,
                UNIQUE (network, number)
            )""",
            "CREATE INDEX flycast_ips_app ON flycast_ips (app_name)",
        ],
    ),
    (
        18,
        [
            # Volumes (ferry.store.sqlite_volumes): the API object as JSON in ``doc``; the
            # columns are what queries filter on. ``attached_machine_id`` is the machine
            # that claimed it (free again once that machine is destroyed).
            """CREATE TABLE volumes (
                id TEXT PRIMARY KEY,
                app_name TEXT NOT NULL,
                host_id TEXT NOT NULL,
                state TEXT NOT NULL,
                attached_machine_id TEXT,
                doc TEXT NOT NULL,
                revision INTEGER NOT NULL
            )""",
            "CREATE INDEX volumes_by_app ON volumes (app_name)",
            "CREATE INDEX volumes_by_host ON volumes (host_id)",
            """CREATE TABLE volume_snapshots (
                id TEXT PRIMARY KEY,
                volume_id TEXT NOT NULL,
                host_id TEXT NOT NULL,
                status TEXT NOT NULL,
                doc TEXT NOT NULL
            )""",
            # The bytes each host can give volumes, as its agent last reported.
            """CREATE TABLE volume_hosts (
                host_id TEXT PRIMARY KEY,
                capacity_bytes INTEGER NOT NULL,
                online_resize INTEGER NOT NULL DEFAULT 0,
                reported_at REAL NOT NULL
            )""",
        ],
    ),
    (
        19,
        [
            # An app's [postgres] section (ferry.store.sqlite_pg_follow): which Postgres
            # cluster it uses and whether that cluster's replicas follow it (JSON policy).
            """CREATE TABLE postgres_follow (
                app_name TEXT PRIMARY KEY,
                database TEXT NOT NULL,
                policy TEXT NOT NULL,
                updated_at REAL NOT NULL
            )""",
        ],
    ),
]


def current_version(conn: Connection) -> int:
    """The highest migration applied (0 for an empty database). Creates ``schema_version``."""
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
    )
    found = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
    return int(found or 0)


def apply_migrations(conn: Connection) -> int:
    """Apply every migration newer than the database, inside the caller's transaction.

    Returns the schema version afterwards. Raises ``RuntimeError`` if the
    database is newer than this code knows (an older Ferry opening a newer
    store); the caller turns that into a user-facing error.
    """
    version = current_version(conn)
    latest = MIGRATIONS[-1][0]
    if version > latest:
        raise RuntimeError(
            f"the state database has schema version {version}, "
            f"but this Ferry only knows up to {latest}"
        )
    # By the numbers recorded, not only the highest: a migration merged in below one
    # already applied (branches that took 17 and 18 apart) still runs once.
    applied = {int(n) for n in conn.execute(text("SELECT version FROM schema_version")).scalars()}
    for number, statements in MIGRATIONS:
        if number in applied:
            continue
        for statement in statements:
            if isinstance(statement, str):
                conn.execute(text(statement))
            else:
                statement(conn)
        conn.execute(
            text("INSERT INTO schema_version (version, applied_at) VALUES (:v, :t)"),
            {"v": number, "t": time.time()},
        )
        version = max(version, number)
    return version
