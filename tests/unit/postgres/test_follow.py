"""The pure follow decision: replicas appear where the app has run for the scale-out
window, go after the scale-in window, never below min_replicas, and only followers go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ferry.model import MachineConfig
from ferry.model.postgres_follow import FollowPolicy
from ferry.model.volume import MachineMount
from ferry.postgres import plan
from ferry.postgres.follow import (
    FOLLOWER,
    RETRY_AFTER,
    Follower,
    FollowMemory,
    FollowOutcome,
    Member,
    decide_follow,
    follower_config,
    remember_failure,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = FollowPolicy(database="db", replicas="follow", scale_out_after=30, scale_in_after=300)
CREATED = [Member("m-ams", "ams", follower=False)]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(
    steps: list[tuple[float, frozenset[str]]],
    members: list[Member],
    policy: FollowPolicy = POLICY,
) -> FollowOutcome:
    """Feed the decision one cycle per ``(seconds, app regions)``; the last outcome."""
    memory = FollowMemory()
    outcome = None
    for seconds, regions in steps:
        outcome = decide_follow(
            "db", [Follower("web", policy, regions)], members, [], at(seconds), memory
        )
        memory = outcome.memory
    assert outcome is not None
    return outcome


def kinds(outcome: FollowOutcome) -> list[tuple[str, str]]:
    return [(a.kind, a.region) for a in outcome.actions]


def test_a_replica_is_added_only_once_the_app_ran_in_the_region_for_the_window() -> None:
    sin = frozenset({"ams", "sin"})
    early = run([(0, sin), (29, sin)], CREATED)
    assert kinds(early) == [] and "sin: app running 29/30 s" in early.reason

    late = run([(0, sin), (29, sin), (30, sin)], CREATED)
    assert kinds(late) == [("add", "sin")]
    assert "the app has run in sin for 30 s" in late.actions[0].reason


def test_leaving_the_region_before_the_window_restarts_it() -> None:
    sin, ams = frozenset({"ams", "sin"}), frozenset({"ams"})
    outcome = run([(0, sin), (20, ams), (25, sin), (50, sin)], CREATED)
    assert kinds(outcome) == [] and "sin: app running 25/30 s" in outcome.reason


def test_a_follower_goes_after_the_scale_in_window_and_only_then() -> None:
    members = [*CREATED, Member("m-sin", "sin", follower=True)]
    ams = frozenset({"ams"})
    waiting = run([(0, ams), (299, ams)], members)
    assert kinds(waiting) == [] and "sin: app gone 299/300 s" in waiting.reason

    gone = run([(0, ams), (300, ams)], members)
    assert kinds(gone) == [("remove", "sin")] and gone.actions[0].machine_id == "m-sin"


def test_members_made_by_create_are_never_removed() -> None:
    members = [*CREATED, Member("m-iad", "iad", follower=False)]
    outcome = run([(0, frozenset({"ams"})), (10_000, frozenset({"ams"}))], members)
    assert kinds(outcome) == []


def test_removals_stop_at_min_replicas() -> None:
    policy = POLICY.model_copy(update={"min_replicas": 1})
    members = [*CREATED, Member("m-sin", "sin", True), Member("m-iad", "iad", True)]
    ams = frozenset({"ams"})
    outcome = run([(0, ams), (400, ams)], members, policy)
    # two replicas, at least one kept: one goes, the other is named as kept
    assert len([a for a in outcome.actions if a.kind == "remove"]) == 1
    assert "kept, min_replicas is 1" in run([(0, ams), (400, ams)], members[:2], policy).reason


def test_several_apps_following_one_database_are_joined() -> None:
    fast = POLICY.model_copy(update={"scale_out_after": 5.0})
    followers = [
        Follower("web", POLICY, frozenset({"ams"})),
        Follower("api", fast, frozenset({"sin"})),
    ]
    memory = decide_follow("db", followers, CREATED, [], at(0), FollowMemory()).memory
    outcome = decide_follow("db", followers, CREATED, [], at(5), memory)
    assert kinds(outcome) == [("add", "sin")]


def test_a_fixed_policy_or_no_members_does_nothing_but_orphan_volumes_are_dropped() -> None:
    fixed = POLICY.model_copy(update={"replicas": "fixed"})
    outcome = decide_follow(
        "db",
        [Follower("web", fixed, frozenset({"sin"}))],
        CREATED,
        [("vol_1", "sin")],
        at(1000),
        FollowMemory(),
    )
    assert kinds(outcome) == [("drop_volume", "sin")] and outcome.actions[0].volume_id == "vol_1"
    none = decide_follow(
        "db", [Follower("web", POLICY, frozenset({"sin"}))], [], [], at(0), FollowMemory()
    )
    assert none.actions == () and "it has no members" in none.reason


def test_a_failed_add_waits_before_it_is_tried_again() -> None:
    sin = frozenset({"ams", "sin"})
    first = run([(0, sin), (30, sin)], CREATED)
    memory = remember_failure(first.memory, "sin", at(30))
    follower = [Follower("web", POLICY, sin)]
    soon = decide_follow("db", follower, CREATED, [], at(31), memory)
    assert kinds(soon) == [] and "retrying a failed add" in soon.reason
    later = decide_follow("db", follower, CREATED, [], at(30 + RETRY_AFTER), soon.memory)
    assert kinds(later) == [("add", "sin")]


def test_the_cluster_never_grows_past_its_member_limit() -> None:
    members = [Member(f"m{i}", f"r{i}", i > 0) for i in range(plan.MAX_MEMBERS)]
    regions = frozenset({"r0", "sin"})
    outcome = run([(0, regions), (60, regions)], members)
    assert kinds(outcome) == [] and "has 7 members already" in outcome.reason


def test_follower_config_drops_the_etcd_member_and_marks_the_follower() -> None:
    template = MachineConfig(
        image="pg",
        env={
            "PG_SCOPE": "db",
            "ETCD_LOCAL": "1",
            "ETCD_INITIAL_CLUSTER": "a=http://x:2380",
            "ETCD_ENDPOINTS": "http://x:2379",
            "PG_BOOTSTRAP_LEADER": "http://x:8008",
        },
        metadata={plan.MEMBER_METADATA: "member"},
        mounts=[MachineMount(volume="vol_old", path="/data", name="pg_data")],
    )
    config = follower_config(template, "vol_new", "web")
    assert config.env == {"PG_SCOPE": "db", "ETCD_ENDPOINTS": "http://x:2379", "PG_FOLLOWER": "1"}
    assert config.metadata[plan.MEMBER_METADATA] == FOLLOWER
    assert config.metadata["ferry-follows"] == "web"
    assert [(m.volume, m.path) for m in config.mounts] == [("vol_new", "/data")]


def test_a_follower_is_tagged_so_patroni_never_makes_it_primary_or_sync() -> None:
    from ferry.postgres.patroni_config import patroni_config, read_settings

    env = {
        "FLY_PRIVATE_IP": "fdaa:0:1:a7b:1::9",
        "FLY_APP_NAME": "db",
        "SU_PASSWORD": "a",
        "REPL_PASSWORD": "b",
        "OPERATOR_PASSWORD": "c",
        "ETCD_ENDPOINTS": "http://[fdaa:0:1:a7b:1::3]:2379",
    }
    member = patroni_config(read_settings(env, hostname="h"))["tags"]
    follower = patroni_config(read_settings({**env, "PG_FOLLOWER": "1"}, hostname="h"))
    assert member["nofailover"] is False and member["nosync"] is False
    assert follower["tags"]["nofailover"] is True and follower["tags"]["nosync"] is True
    assert not read_settings({**env, "PG_FOLLOWER": "1"}, hostname="h").etcd_local
