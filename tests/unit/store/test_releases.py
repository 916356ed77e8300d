"""The StateStore contract for releases, run against every backend."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ferry.errors import ConflictError, NotFoundError
from ferry.model import InitConfig, MachineConfig
from ferry.model.release import NewRelease
from ferry.store import SqliteStore, StateStore
from ferry.store.migrations import MIGRATIONS, current_version

from .factories import T0, make_app

IMAGE = "reg/web@sha256:" + "a" * 64


def test_versions_count_up_per_app_and_list_newest_first(store: StateStore) -> None:
    store.create_app(make_app("web"))
    store.create_app(make_app("api"))
    configs = {
        "web": MachineConfig(image=IMAGE, env={"A": "1"}),
        "worker": MachineConfig(image=IMAGE, init=InitConfig(cmd=["bin/worker"])),
    }
    new = NewRelease(image=IMAGE, configs=configs)
    first = store.create_release("web", new, user="admin", at=T0)
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
    assert first.configs == configs
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


def test_a_release_recorded_before_configs_per_group_reads_as_its_groups_config(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    worker = MachineConfig.model_validate(
        {"image": IMAGE, "metadata": {"fly_process_group": "worker"}}
    )
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # as a Ferry that knew migrations up to 6 left it
        current_version(conn)
        for number, statements in MIGRATIONS:
            if number > 6:
                break
            for statement in statements:
                conn.execute(text(statement))
            conn.execute(text("INSERT INTO schema_version VALUES (:v, 0)"), {"v": number})
        conn.execute(
            text(
                "INSERT INTO apps (name, id, org_slug, status, network, created_at) "
                "VALUES ('web', 'id-web', 'personal', 'deployed', 'default', 0)"
            )
        )
        for version, config in ((1, MachineConfig(image=IMAGE)), (2, worker), (3, None)):
            conn.execute(
                text(
                    "INSERT INTO releases VALUES ('web', :v, :image, 'complete', 'rolling',"
                    " 'deploy', 'admin', :config, 0, 0)"
                ),
                {
                    "v": version,
                    "image": IMAGE,
                    "config": config.model_dump_json() if config else None,
                },
            )
    engine.dispose()

    store = SqliteStore(path)
    try:
        assert store.get_release("web", 1).configs == {"app": MachineConfig(image=IMAGE)}
        assert store.get_release("web", 2).configs == {"worker": worker}
        assert store.get_release("web", 3).configs is None
        assert (
            store.create_release("web", NewRelease(image=IMAGE), user="admin", at=T0).version == 4
        )
    finally:
        store.close()
