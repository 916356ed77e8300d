"""The pure decisions of `ferry postgres create|status|attach` (ferry.postgres.plan)."""

from __future__ import annotations

import pytest

from ferry.errors import ValidationError
from ferry.postgres import plan
from ferry.postgres.patroni_config import read_settings
from ferry.postgres.primary_proxy import leader_address

REGIONS = ["ams", "iad", "sin"]


def test_the_primary_region_comes_first_then_the_replicas() -> None:
    request = plan.CreateRequest(name="pgdb", region="ams", replicas=("iad", "sin"))
    assert plan.validate_create(request, REGIONS) == ("ams", "iad", "sin")


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (plan.CreateRequest(name="PgDb", region="ams"), "has uppercase letters"),
        (plan.CreateRequest(name="p", region="ams"), "shorter than 2"),
        (plan.CreateRequest(name="pgdb", region="nowhere"), "unknown region 'nowhere'"),
        (plan.CreateRequest(name="pgdb", region="ams", replicas=("mars",)), "'mars'"),
        (plan.CreateRequest(name="pgdb", region="ams", volume_size_gb=0), "at least 1 GB"),
        (plan.CreateRequest(name="pgdb", region="ams", vm_size="huge"), "unknown machine size"),
        (plan.CreateRequest(name="pgdb", region="ams", replicas=("ams",) * 7), "at most 7"),
    ],
)
def test_bad_requests_name_their_problem(request_: plan.CreateRequest, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        plan.validate_create(request_, REGIONS)
    assert words in caught.value.message


def test_an_unknown_region_error_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        plan.validate_create(plan.CreateRequest(name="pgdb", region="xyz"), REGIONS)
    assert caught.value.hint == "use one of: ams, iad, sin"


def test_credentials_are_fresh_long_and_url_safe() -> None:
    first, second = plan.new_credentials(), plan.new_credentials()
    assert set(first) == {"SU_PASSWORD", "REPL_PASSWORD", "OPERATOR_PASSWORD"}
    assert len(set(first.values()) | set(second.values())) == 6
    assert all(
        len(v) >= 32 and v.replace("-", "").replace("_", "").isalnum() for v in first.values()
    )


def test_every_member_gets_one_env_naming_all_etcd_peers_by_6pn_address() -> None:
    members = [("m1", "fdaa:0:1::2"), ("m2", "fdaa:0:2::2")]
    env = plan.member_env("pgdb", "ams", members, sync=True)
    assert (
        env["ETCD_INITIAL_CLUSTER"] == "m1=http://[fdaa:0:1::2]:2380,m2=http://[fdaa:0:2::2]:2380"
    )
    assert env["ETCD_ENDPOINTS"] == "http://[fdaa:0:1::2]:2379,http://[fdaa:0:2::2]:2379"
    # The image's own reader takes it (with the machine's address and secrets).
    settings = read_settings(
        {
            **env,
            "FLY_PRIVATE_IP": "fdaa:0:2::2",
            "FLY_MACHINE_ID": "m2",
            "SU_PASSWORD": "a",
            "REPL_PASSWORD": "b",
            "OPERATOR_PASSWORD": "c",
        }
    )
    assert settings.etcd_local and settings.synchronous_mode
    assert (settings.scope, settings.name) == ("pgdb", "m2")
    assert "PG_SYNC" not in plan.member_env("pgdb", "ams", members, sync=False)


def test_members_get_the_failover_timings_and_etcd_sized_to_their_wan() -> None:
    members = [("m1", "fdaa:0:1::2"), ("m2", "fdaa:0:2::2"), ("m3", "fdaa:0:3::2")]

    env = plan.member_env("pgdb", "ams", members, sync=True, regions=("ams", "iad", "sin"))

    assert (env["PG_TTL"], env["PG_LOOP_WAIT"], env["PG_RETRY_TIMEOUT"]) == ("12", "2", "5")
    # iad-sin, 224 ms, is the longest round trip: heartbeat 250 ms, election 5 of them.
    assert (env["ETCD_HEARTBEAT_MS"], env["ETCD_ELECTION_MS"]) == ("250", "1250")
    # Patroni's synchronous mode, not strict (no failover loses an acknowledged commit).
    assert env["PG_SYNC"] == "1" and "PG_SYNC_STRICT" not in env
    settings = read_settings(
        {**env, "FLY_PRIVATE_IP": "fdaa:0:1::2", "SU_PASSWORD": "a", "REPL_PASSWORD": "b"}
        | {"OPERATOR_PASSWORD": "c"}
    )
    assert settings.synchronous_mode and not settings.synchronous_mode_strict
    assert settings.etcd_election_ms == 1250


def test_one_region_keeps_etcds_defaults() -> None:
    alone = plan.member_env("pgdb", "ams", [("m1", "fdaa:0:1::2")], sync=True, regions=("ams",))

    assert (alone["ETCD_HEARTBEAT_MS"], alone["ETCD_ELECTION_MS"]) == ("100", "1000")
    assert plan.etcd_timings(("ams", "fra")) == (100, 1000)  # 11 ms: etcd's defaults
    # A region the matrix does not know counts as its longest round trip (gru-sin, 331 ms).
    assert plan.etcd_timings(("ams", "xyz")) == (350, 1750)


def test_only_the_replicas_wait_for_the_primary_regions_member_to_bootstrap() -> None:
    members = [("m1", "fdaa:0:1::2"), ("m2", "fdaa:0:2::2"), ("m3", "fdaa:0:3::2")]
    assert plan.bootstrap_env(members, 0) == {}
    assert plan.bootstrap_env(members, 2) == {"PG_BOOTSTRAP_LEADER": "http://[fdaa:0:1::2]:8008"}


def test_attach_names_follow_the_app_and_refuse_a_bad_database_name() -> None:
    assert plan.attach_names("my-app") == plan.AttachNames(database="my_app", user="my_app")
    assert plan.attach_names("9lives").user == "app_9lives"
    # Postgres refuses to create roles named pg_*: the app pg-replay gets app_pg_replay.
    assert plan.attach_names("pg-replay") == plan.AttachNames("app_pg_replay", "app_pg_replay")
    assert plan.attach_names("web", "shop").database == "shop"
    with pytest.raises(ValidationError, match="not a plain identifier"):
        plan.attach_names("web", "Shop; drop")


def test_database_url_escapes_its_parts() -> None:
    url = plan.database_url("my_app", "p@ss/word", "ams.pgdb.internal", "my_app")
    assert url == "postgres://my_app:p%40ss%2Fword@ams.pgdb.internal:5432/my_app"


def test_attach_sql_quotes_the_password_and_records_the_attachment_first() -> None:
    script = plan.attach_sql("web", plan.AttachNames("web", "web"), "it's")
    lines = script.splitlines()
    assert lines[1].startswith("INSERT INTO ferry_attachments")  # a duplicate stops it here
    assert "PASSWORD 'it''s'" in script
    assert "DELETE FROM ferry_attachments WHERE app = 'web'" in plan.detach_sql("web")


def test_patronis_cluster_answer_becomes_rows_primary_first() -> None:
    answer = {
        "members": [
            {
                "name": "m2",
                "role": "replica",
                "state": "streaming",
                "host": "fdaa::3",
                "timeline": 1,
                "lag": 16,
            },
            {"name": "m1", "role": "leader", "state": "running", "host": "fdaa::2", "timeline": 1},
            {"name": "m3", "role": "sync_standby", "state": "streaming", "lag": "unknown"},
        ]
    }
    rows = plan.read_cluster(answer)
    assert [(r.name, r.role, r.lag_bytes) for r in rows] == [
        ("m1", "primary", 0),
        ("m2", "replica", 16),
        ("m3", "sync replica", None),
    ]
    assert plan.read_cluster({}) == []


def test_the_forwarder_targets_the_running_leader_only() -> None:
    leader = {"name": "m1", "role": "leader", "state": "running", "host": "fdaa::2", "port": 5433}
    replica = {"name": "m2", "role": "replica", "state": "running", "host": "fdaa::3", "port": 5433}
    assert leader_address({"members": [replica, leader]}) == ("fdaa::2", 5433)
    assert leader_address({"members": [replica, {**leader, "state": "stopped"}]}) is None
    assert leader_address({"members": [{**leader, "role": "master"}]}) == ("fdaa::2", 5433)
    assert leader_address({}) is None


def test_status_shows_the_freshest_of_the_members_views() -> None:
    """After a partition heals, a member may answer from the DCS state it last saw: the
    view with a running primary and the newest timeline wins."""

    def row(name: str, role: str, timeline: int, state: str = "running") -> plan.MemberStatus:
        return plan.MemberStatus(name, role, state, "h", timeline, 0)

    stale = [row("a", "primary", 1), row("b", "replica", 1)]
    fresh = [row("b", "primary", 2), row("a", "replica", 1), row("c", "replica", 2)]
    headless = [row("a", "replica", 3, state="stopped")]
    assert plan.freshest_view([stale, fresh, headless]) == fresh
    assert plan.freshest_view([headless]) == headless
    assert plan.freshest_view([stale, list(stale)]) is stale  # the first of equals
