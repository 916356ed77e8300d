"""The store's secrets: sealed bytes in, one version bump per change, all or nothing."""

from __future__ import annotations

import pytest

from ferry.errors import NotFoundError
from ferry.store import StateStore

from .factories import T0, make_app

SEALED = (b"\x01cipher", b"n" * 12, "key-1", "digest-1")


def test_a_change_is_one_version_and_rows_remember_it(store: StateStore) -> None:
    store.create_app(make_app("web"))
    first = store.change_secrets("web", {"A": SEALED, "B": SEALED}, [], at=T0)
    assert (first.version, first.deployed, first.staged) == (1, 0, True)
    second = store.change_secrets("web", {"B": (b"x", b"y" * 12, "key-1", "d2")}, ["A"], at=T0)
    assert second.version == 2
    versions, rows = store.list_secrets("web")
    assert versions == second
    assert [(r.name, r.version, r.digest, r.ciphertext) for r in rows] == [("B", 2, "d2", b"x")]
    assert store.secret_key_ids() == {"key-1": 1}


def test_removing_a_secret_that_is_not_set_changes_nothing(store: StateStore) -> None:
    store.create_app(make_app("web"))
    store.change_secrets("web", {"A": SEALED}, [], at=T0)
    with pytest.raises(NotFoundError, match="no secret named NOPE"):
        store.change_secrets("web", {"C": SEALED}, ["A", "NOPE"], at=T0)
    versions, rows = store.list_secrets("web")
    assert versions.version == 1 and [r.name for r in rows] == ["A"]
    with pytest.raises(NotFoundError, match="app 'ghost' not found"):
        store.change_secrets("ghost", {"A": SEALED}, [], at=T0)


def test_deployed_follows_rolls_and_never_goes_back(store: StateStore) -> None:
    store.create_app(make_app("web"))
    assert store.mark_secrets_deployed("web", 5).deployed == 0  # nothing stored yet
    store.change_secrets("web", {"A": SEALED}, [], at=T0)
    store.change_secrets("web", {"A": SEALED}, [], at=T0)
    assert store.mark_secrets_deployed("web", 2).deployed == 2
    assert store.mark_secrets_deployed("web", 1).deployed == 2
    assert not store.list_secrets("web")[0].staged


def test_reseal_is_all_or_nothing(store: StateStore) -> None:
    store.create_app(make_app("web"))
    store.change_secrets("web", {"A": SEALED, "B": SEALED}, [], at=T0)

    def failing(row: object) -> tuple[bytes, bytes, str, str]:
        if row.name == "B":
            raise RuntimeError("cannot open B")
        return b"new", b"m" * 12, "key-2", "d"

    with pytest.raises(RuntimeError):
        store.reseal_secrets(failing)
    assert store.secret_key_ids() == {"key-1": 2}
    assert store.reseal_secrets(lambda row: (b"new", b"m" * 12, "key-2", "d")) == 2
    assert store.secret_key_ids() == {"key-2": 2}


def test_deleting_the_app_deletes_its_secrets(store: StateStore) -> None:
    store.create_app(make_app("web"))
    store.change_secrets("web", {"A": SEALED}, [], at=T0)
    store.delete_app("web")
    store.create_app(make_app("web"))
    versions, rows = store.list_secrets("web")
    assert rows == [] and versions.version == 0
    assert store.secret_key_ids() == {}
