"""Backends the conformance suite runs against (kine-style: one suite, every backend)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ferry.store import SqliteStore, StateStore

BACKENDS: dict[str, Callable[[Path], StateStore]] = {
    "sqlite": lambda tmp: SqliteStore(tmp / "state.db"),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    opened = BACKENDS[request.param](tmp_path)
    try:
        yield opened
    finally:
        opened.close()
