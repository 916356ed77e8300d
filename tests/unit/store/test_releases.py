"""The StateStore contract for releases, run against every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ferry.errors import ConflictError, NotFoundError
from ferry.model import MachineConfig
from ferry.model.release import NewRelease
from ferry.store import StateStore

from .factories import T0, make_app

IMAGE = "reg/web@sha256:" + "a" * 64


def test_versions_count_up_per_app_and_list_newest_first(store: StateStore) -> None:
    store.create_app(make_app("web"))
    store.create_app(make_app("api"))
    config = MachineConfig(image=IMAGE, env={"A": "1"})
    first = store.create_release("web", NewRelease(image=IMAGE, config=config), user="admin", at=T0)
    store.create_release("api", NewRelease(image=IMAGE), user="admin", at=T0)
    later = T0 + timedelta(minutes=5)
    second = store.create_release(
        "web", NewRelease(image=IMAGE, strategy="bluegreen"), user="admin", at=later
    )

    assert (first.version, first.status, first.user, first.created_at) == (
        1,
        "running",
        "admin",
        T0,
    )
    assert first.config == config
    assert (second.version, second.strategy) == (2, "bluegreen")
    assert [r.version for r in store.list_releases("web")] == [2, 1]
    assert [r.version for r in store.list_releases("api")] == [1]
    assert [r.version for r in store.list_releases("web", limit=1)] == [2]
    assert store.get_release("web", 1) == first


def test_a_running_release_finishes_once(store: StateStore) -> None:
    store.create_app(make_app("web"))
    store.create_release("web", NewRelease(image=IMAGE), user="admin", at=T0)
    done = store.finish_release("web", 1, "complete", at=T0 + timedelta(seconds=30))
    assert (done.status, done.updated_at) == ("complete", T0 + timedelta(seconds=30))
    with pytest.raises(ConflictError, match="already complete"):
        store.finish_release("web", 1, "failed", at=T0)
    assert store.get_release("web", 1).status == "complete"


def test_unknown_apps_and_versions_are_not_found_and_releases_go_with_their_app(
    store: StateStore,
) -> None:
    with pytest.raises(NotFoundError, match="'ghost'"):
        store.create_release("ghost", NewRelease(image=IMAGE), user="admin", at=T0)
    store.create_app(make_app("web"))
    with pytest.raises(NotFoundError, match="has no release v3"):
        store.get_release("web", 3)
    with pytest.raises(NotFoundError, match="has no release v3"):
        store.finish_release("web", 3, "failed", at=T0)
    store.create_release("web", NewRelease(image=IMAGE), user="admin", at=T0)
    store.delete_app("web")
    store.create_app(make_app("web"))
    assert store.list_releases("web") == []
    assert store.create_release("web", NewRelease(image=IMAGE), user="admin", at=T0).version == 1
