"""SQLAlchemy Core descriptions of the tables that ``migrations.py`` creates.

These are used to build queries only; the DDL of record is the migrations.
The store conformance suite catches any drift between the two.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, String, Table, Text

__all__ = [
    "acme_accounts",
    "apps",
    "audit",
    "autoscale_policies",
    "certificates",
    "counters",
    "events",
    "hosts",
    "invitations",
    "leases",
    "logs",
    "machine_versions",
    "machines",
    "members",
    "meta",
    "orgs",
    "releases",
    "secret_versions",
    "secrets",
    "tokens",
]

metadata = MetaData()

meta = Table("meta", metadata, Column("key", String, primary_key=True), Column("value", Text))

counters = Table(
    "counters", metadata, Column("name", String, primary_key=True), Column("value", Integer)
)

orgs = Table(
    "orgs",
    metadata,
    Column("slug", String, primary_key=True),
    Column("name", String),
    Column("created_at", Float),
    Column("sixpn_network", Integer),
)

members = Table(
    "members",
    metadata,
    Column("org_slug", String, primary_key=True),
    Column("email", String, primary_key=True),
    Column("role", String),
    Column("joined_at", Float),
)

invitations = Table(
    "invitations",
    metadata,
    Column("id", String, primary_key=True),
    Column("org_slug", String),
    Column("email", String),
    Column("role", String),
    Column("secret_sha256", String),
    Column("created_at", Float),
    Column("expires_at", Float),
    Column("accepted_at", Float),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String, primary_key=True),
    Column("name", String),
    Column("token_sha256", String),
    Column("created_at", Float),
    Column("kind", String),
    Column("org_slug", String),
    Column("app_name", String),
    Column("email", String),
    Column("host_id", String),
    Column("region", String),
    Column("expires_at", Float),
    Column("revoked_at", Float),
)

apps = Table(
    "apps",
    metadata,
    Column("name", String, primary_key=True),
    Column("id", String),
    Column("org_slug", String),
    Column("status", String),
    Column("network", String),
    Column("created_at", Float),
)

hosts = Table(
    "hosts",
    metadata,
    Column("id", String, primary_key=True),
    Column("region", String),
    Column("address", String),
    Column("cpus", Integer),
    Column("memory_mb", Integer),
    Column("machine_subnet", String),
    Column("status", String),
    Column("last_heartbeat", Float),
    Column("registered_at", Float),
    Column("sixpn_host", Integer),
)

machines = Table(
    "machines",
    metadata,
    Column("id", String, primary_key=True),
    Column("name", String),
    Column("app_name", String),
    Column("region", String),
    Column("host_id", String),
    Column("instance_id", String),
    Column("host_ip", String),
    Column("private_ip", String),
    Column("config", Text),
    Column("image_ref", Text),
    Column("desired_state", String),
    Column("state", String),
    Column("exit_code", Integer),
    Column("restart_count", Integer),
    Column("restart_generation", Integer),
    Column("pending_signal", String),
    Column("stop_override", Text),
    Column("cordoned", Integer),
    Column("checks", Text),
    Column("revision", Integer),
    Column("resource_version", Integer),
    Column("created_at", Float),
    Column("updated_at", Float),
)

events = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("machine_id", String),
    Column("id", String),
    Column("type", String),
    Column("status", String),
    Column("source", String),
    Column("timestamp", Integer),
    Column("request", Text),
)

logs = Table(
    "logs",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("machine_id", String),
    Column("line", Text),
)

autoscale_policies = Table(
    "autoscale_policies",
    metadata,
    Column("app_name", String, primary_key=True),
    Column("policy", Text),
    Column("updated_at", Float),
)

releases = Table(
    "releases",
    metadata,
    Column("app_name", String, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("image", Text),
    Column("status", String),
    Column("strategy", String),
    Column("description", Text),
    Column("user_name", String),
    Column("config", Text),
    Column("created_at", Float),
    Column("updated_at", Float),
    Column("configs", Text),
)

leases = Table(
    "leases",
    metadata,
    Column("machine_id", String, primary_key=True),
    Column("nonce", String),
    Column("owner", String),
    Column("description", String),
    Column("version", String),
    Column("expires_at", Integer),
)

machine_versions = Table(
    "machine_versions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("machine_id", String),
    Column("version", String),
    Column("config", Text),
    Column("created_at", Float),
)

secrets = Table(
    "secrets",
    metadata,
    Column("app_name", String, primary_key=True),
    Column("name", String, primary_key=True),
    Column("ciphertext", LargeBinary),
    Column("nonce", LargeBinary),
    Column("key_id", String),
    Column("digest", String),
    Column("version", Integer),
    Column("created_at", Float),
    Column("updated_at", Float),
)

secret_versions = Table(
    "secret_versions",
    metadata,
    Column("app_name", String, primary_key=True),
    Column("version", Integer),
    Column("deployed", Integer),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float),
    Column("org_slug", String),
    Column("actor", String),
    Column("token_id", String),
    Column("method", String),
    Column("route", String),
    Column("target", Text),
    Column("source", String),
    Column("status", Integer),
    Column("outcome", Text),
)

# Migration 11: certificates by ACME. The private keys are sealed (key_*), never plain.
certificates = Table(
    "certificates",
    metadata,
    Column("hostname", String, primary_key=True),
    Column("app_name", String),
    Column("status", String),
    Column("chain_pem", LargeBinary),
    Column("key_ciphertext", LargeBinary),
    Column("key_nonce", LargeBinary),
    Column("key_key_id", String),
    Column("key_digest", String),
    Column("not_before", Float),
    Column("not_after", Float),
    Column("last_error", Text),
    Column("failures", Integer),
    Column("next_attempt", Float),
    Column("challenges", Text),
    Column("version", Integer),
    Column("created_at", Float),
    Column("updated_at", Float),
)

acme_accounts = Table(
    "acme_accounts",
    metadata,
    Column("directory_url", String, primary_key=True),
    Column("key_ciphertext", LargeBinary),
    Column("key_nonce", LargeBinary),
    Column("key_key_id", String),
    Column("key_digest", String),
    Column("uri", Text),
    Column("created_at", Float),
)
