"""The guard around Patroni's leader-key update: a member whose lease expired (a frozen
primary) re-attaches the key only while it is unchanged and still its own.

Patroni is not installed outside the image, so a stand-in ``patroni.dcs.etcd3`` module
and a stand-in ``Etcd3`` instance give the guard what it uses of them.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ferry.postgres.entrypoint import _guarded_update_leader


class ReturnFalseError(Exception):
    pass


@pytest.fixture(autouse=True)
def fake_patroni(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    module = types.ModuleType("patroni.dcs.etcd3")
    module.Etcd3Error = RuntimeError  # type: ignore[attr-defined]
    module.ReturnFalseException = ReturnFalseError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "patroni.dcs.etcd3", module)
    yield


@dataclass
class Retry:
    deadline: float = 10.0
    stoptime: float = 1e12

    def copy(self) -> Retry:
        return Retry()

    def __call__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("retry", None)
        return func(*args, **kwargs)


@dataclass
class Leader:
    index: str
    session: int | None
    name: str


@dataclass
class Client:
    succeeds: bool = True
    puts: list[tuple[str, str, int, str]] = field(default_factory=list)

    def put(self, key: str, value: str, lease: int, mod_revision: str, retry: Any = None) -> bool:
        self.puts.append((key, value, lease, mod_revision))
        return self.succeeds


@dataclass
class Dcs:
    """What ``Etcd3`` holds: its lease (renewed by ``_do_refresh_lease``) and cache."""

    leader: Leader | None
    new_lease: int = 7
    _name: str = "m1"
    leader_path: str = "/ferry/pgdb/leader"
    _client: Client = field(default_factory=Client)
    _retry: Retry = field(default_factory=Retry)
    _lease: int | None = 5

    @property
    def cluster(self) -> Any:
        return types.SimpleNamespace(leader=self.leader)

    def _do_refresh_lease(self, force: bool = False, retry: Any = None) -> None:
        self._lease = self.new_lease

    def _run_and_handle_exceptions(
        self, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        return func(*args, **kwargs)


def test_a_live_lease_keeps_the_key_without_writing_it() -> None:
    dcs = Dcs(leader=Leader("41", 5, "m1"), new_lease=5)

    assert _guarded_update_leader(dcs)
    assert dcs._client.puts == []


def test_a_new_lease_reattaches_the_key_only_if_unchanged_since_seen() -> None:
    dcs = Dcs(leader=Leader("41", 5, "m1"))

    assert _guarded_update_leader(dcs)
    assert dcs._client.puts == [("/ferry/pgdb/leader", "m1", 7, "41")]


def test_a_key_changed_meanwhile_is_not_taken_back() -> None:
    # The cache still names m1, but the key was re-created by the promoted replica:
    # etcd refuses the compare, and the member reports the lock lost (Patroni demotes).
    dcs = Dcs(leader=Leader("41", 5, "m1"), _client=Client(succeeds=False))

    assert not _guarded_update_leader(dcs)


@pytest.mark.parametrize("leader", [None, Leader("52", 9, "m2")])
def test_a_key_that_is_gone_or_another_members_is_never_written(leader: Leader | None) -> None:
    dcs = Dcs(leader=leader)

    assert not _guarded_update_leader(dcs)
    assert dcs._client.puts == []
