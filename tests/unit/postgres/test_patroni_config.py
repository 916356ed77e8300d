"""Patroni's and etcd's settings rendered from a Postgres machine's environment."""

from __future__ import annotations

import json

import pytest

from ferry.postgres.patroni_config import (
    SettingsError,
    etcd_argv,
    patroni_config,
    patroni_env,
    read_settings,
    wal_limits,
)

SECRETS = {"SU_PASSWORD": "su-secret", "REPL_PASSWORD": "repl-secret", "OPERATOR_PASSWORD": "op-s"}
MACHINE = {"FLY_PRIVATE_IP": "fdaa:0:1:a7b:1::3", "FLY_APP_NAME": "db", "FLY_MACHINE_ID": "m1"}


def test_a_machine_runs_its_own_etcd_member_when_no_endpoints_are_given() -> None:
    settings = read_settings({**MACHINE, **SECRETS}, hostname="h")

    assert (settings.scope, settings.name, settings.data_dir) == ("db", "m1", "/data/postgresql")
    assert settings.etcd_local
    assert settings.etcd_endpoints == ("http://[fdaa:0:1:a7b:1::3]:2379",)
    assert settings.etcd_initial_cluster == "m1=http://[fdaa:0:1:a7b:1::3]:2380"


def test_the_config_advertises_the_6pn_address_and_holds_no_password() -> None:
    settings = read_settings({**MACHINE, **SECRETS}, hostname="h")

    config = patroni_config(settings)
    text = json.dumps(config)

    assert (
        config["postgresql"]["connect_address"] == "[fdaa:0:1:a7b:1::3]:5433"
    )  # Postgres; 5432 forwards
    assert config["restapi"] == {
        "listen": "[::]:8008",
        "connect_address": "[fdaa:0:1:a7b:1::3]:8008",
    }
    assert config["etcd3"] == {"hosts": ["[fdaa:0:1:a7b:1::3]:2379"]}
    assert config["postgresql"]["data_dir"] == "/data/postgresql"
    assert config["postgresql"]["bin_dir"] == "/usr/lib/postgresql/15/bin"
    assert config["bootstrap"]["dcs"]["postgresql"]["use_pg_rewind"] is True
    for secret in SECRETS.values():
        assert secret not in text


def test_passwords_reach_patroni_only_through_its_environment() -> None:
    settings = read_settings({**MACHINE, **SECRETS}, hostname="h")

    env = patroni_env(settings, {**MACHINE, **SECRETS, "UNRELATED": "x"})

    assert env["PATRONI_SUPERUSER_PASSWORD"] == "su-secret"
    assert env["PATRONI_REPLICATION_PASSWORD"] == "repl-secret"
    assert env["OPERATOR_PASSWORD"] == "op-s"
    assert "UNRELATED" not in env and "SU_PASSWORD" not in env


def test_external_etcd_endpoints_turn_the_local_member_off() -> None:
    env = {**MACHINE, **SECRETS, "ETCD_ENDPOINTS": "http://10.0.0.1:2379, http://10.0.0.2:2379"}

    settings = read_settings(env, hostname="h")

    assert not settings.etcd_local
    assert patroni_config(settings)["etcd3"]["hosts"] == ["10.0.0.1:2379", "10.0.0.2:2379"]


def test_etcd_listens_on_the_private_address_and_loopback() -> None:
    settings = read_settings({**MACHINE, **SECRETS, "ETCD_DATA_DIR": "/d/etcd"}, hostname="h")

    argv = etcd_argv(settings)

    assert argv[argv.index("--listen-client-urls") + 1] == (
        "http://[fdaa:0:1:a7b:1::3]:2379,http://127.0.0.1:2379"
    )
    assert argv[argv.index("--data-dir") + 1] == "/d/etcd"
    assert argv[argv.index("--initial-cluster-token") + 1] == "db"


def test_an_ipv4_address_listens_on_all_ipv4_addresses() -> None:
    settings = read_settings({**SECRETS, "FLY_PRIVATE_IP": "127.0.0.1"}, hostname="box.1")

    assert settings.name == "box-1"  # a name safe in etcd keys and URLs
    assert settings.scope == "postgres"
    assert patroni_config(settings)["restapi"]["listen"] == "0.0.0.0:8008"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"FLY_PRIVATE_IP": ""}, "FLY_PRIVATE_IP is not set"),
        ({"FLY_PRIVATE_IP": "not-an-ip"}, "'not-an-ip' is not an IP address"),
        ({"SU_PASSWORD": ""}, "SU_PASSWORD is not set"),
        ({"REPL_PASSWORD": ""}, "REPL_PASSWORD is not set"),
        ({"OPERATOR_PASSWORD": ""}, "OPERATOR_PASSWORD is not set"),
        ({"ETCD_ENDPOINTS": "10.0.0.1:2379"}, "is not an http(s):// URL"),
        ({"PG_TTL": "soon"}, "PG_TTL='soon' is not a positive number"),
        (
            {"PG_TTL": "8", "PG_LOOP_WAIT": "3", "PG_RETRY_TIMEOUT": "3"},
            "PG_LOOP_WAIT \\+ 2 \\* PG_RETRY_TIMEOUT = 9 s exceeds PG_TTL = 8 s",
        ),
        ({"ETCD_HEARTBEAT_MS": "0"}, "ETCD_HEARTBEAT_MS='0' is not a positive number of ms"),
        ({"PG_DISK_MB": "1G"}, "PG_DISK_MB='1G' is not a positive number of MB"),
        (
            {"ETCD_HEARTBEAT_MS": "300", "ETCD_ELECTION_MS": "1000"},
            "ETCD_ELECTION_MS=1000 is below 5 \\* ETCD_HEARTBEAT_MS=300",
        ),
    ],
)
def test_a_bad_environment_names_the_variable(change: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace("(", r"\(").replace(")", r"\)")):
        read_settings({**MACHINE, **SECRETS, **change}, hostname="h")


def test_failover_timings_default_to_ferrys_and_keep_patronis_rule() -> None:
    settings = read_settings({**MACHINE, **SECRETS}, hostname="h")
    dcs = patroni_config(settings)["bootstrap"]["dcs"]

    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (12, 2, 5)
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    # A crashed primary that its machine brings back hands its key over: a failover.
    assert dcs["primary_start_timeout"] == 0
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["postgresql"]["parameters"]["wal_log_hints"] == "on"
    assert dcs["postgresql"]["parameters"]["wal_retrieve_retry_interval"] == "1s"
    # A member pg_rewind cannot mend is cloned afresh: the old primary always rejoins.
    local = patroni_config(settings)["postgresql"]
    assert local["remove_data_directory_on_rewind_failure"] is True
    assert local["remove_data_directory_on_diverged_timelines"] is True


def test_etcd_gets_the_heartbeat_and_election_timeout_of_the_env() -> None:
    env = {**MACHINE, **SECRETS, "ETCD_HEARTBEAT_MS": "250", "ETCD_ELECTION_MS": "1250"}

    argv = etcd_argv(read_settings(env, hostname="h"))
    default = etcd_argv(read_settings({**MACHINE, **SECRETS}, hostname="h"))

    assert argv[argv.index("--heartbeat-interval") + 1] == "250"
    assert argv[argv.index("--election-timeout") + 1] == "1250"
    assert default[default.index("--election-timeout") + 1] == "1000"  # etcd's own


@pytest.mark.parametrize(
    ("change", "mode", "strict"),
    [
        ({}, False, False),
        ({"PG_SYNC": "1"}, True, False),
        ({"PG_SYNC": "1", "PG_SYNC_STRICT": "1"}, True, True),
        ({"PG_SYNC_STRICT": "1"}, False, False),  # strict means nothing without sync
    ],
)
def test_synchronous_mode_and_its_strict_variant(
    change: dict[str, str], mode: bool, strict: bool
) -> None:
    dcs = patroni_config(read_settings({**MACHINE, **SECRETS, **change}, hostname="h"))

    assert dcs["bootstrap"]["dcs"]["synchronous_mode"] is mode
    assert dcs["bootstrap"]["dcs"]["synchronous_mode_strict"] is strict


def test_the_wal_kept_is_bounded_by_the_volume_so_a_lost_replica_cannot_fill_it() -> None:
    """A 1 GB volume keeps at most a quarter for a slot's WAL and an eighth between
    checkpoints; a big one stops at Postgres's own 1 GB; an unknown size is unbounded."""
    config = patroni_config(read_settings({**MACHINE, **SECRETS, "PG_DISK_MB": "1008"}, "h"))
    parameters = config["postgresql"]["parameters"]

    assert parameters["max_slot_wal_keep_size"] == "252MB"
    assert parameters["max_wal_size"] == "126MB"
    assert parameters["min_wal_size"] == "63MB"
    assert wal_limits(500_000)["max_wal_size"] == "1024MB"
    assert wal_limits(200)["max_wal_size"] == "64MB"
    assert wal_limits(200)["max_slot_wal_keep_size"] == "128MB"
    unknown = patroni_config(read_settings({**MACHINE, **SECRETS}, "h"))["postgresql"]
    assert "max_slot_wal_keep_size" not in unknown["parameters"]


def test_a_member_names_itself_and_its_region_in_custom_settings() -> None:
    env = {**MACHINE, **SECRETS, "FLY_REGION": "sin"}
    parameters = patroni_config(read_settings(env, "h"))["postgresql"]["parameters"]

    assert (parameters["ferry.machine_id"], parameters["ferry.region"]) == ("m1", "sin")
