"""The StateStore contract for ``[postgres]`` follow policies, run against every backend."""

from __future__ import annotations

import pytest

from ferry.errors import NotFoundError
from ferry.model.postgres_follow import FollowPolicy
from ferry.store import StateStore

from .factories import make_app


def test_policy_round_trip_replace_and_delete(store: StateStore) -> None:
    store.create_app(make_app("web"))
    assert store.get_follow_policy("web") is None

    store.set_follow_policy("web", FollowPolicy(database="db"))
    store.set_follow_policy("web", FollowPolicy(database="db2", min_replicas=2))

    assert store.get_follow_policy("web") == FollowPolicy(database="db2", min_replicas=2)
    assert list(store.list_follow_policies()) == ["web"]
    assert store.delete_follow_policy("web") is True
    assert store.delete_follow_policy("web") is False
    assert store.get_follow_policy("web") is None


def test_policy_needs_an_existing_app_and_goes_with_it(store: StateStore) -> None:
    with pytest.raises(NotFoundError, match="'ghost'"):
        store.set_follow_policy("ghost", FollowPolicy(database="db"))
    assert store.list_follow_policies() == {}
    store.create_app(make_app("web"))
    store.set_follow_policy("web", FollowPolicy(database="db", replicas="follow"))

    store.delete_app("web")

    assert store.list_follow_policies() == {}
