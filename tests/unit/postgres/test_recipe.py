"""The image recipe: which Debian packages, and when the cached image is stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.postgres import recipe


def test_the_base_key_is_stable_and_follows_the_package_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = recipe.base_key()
    assert key == recipe.base_key() and len(key) == 16

    monkeypatch.setattr(recipe, "PACKAGES", (*recipe.PACKAGES, "postgresql-15-pgvector"))
    assert recipe.base_key() != key


def test_the_base_key_follows_the_builder_version(monkeypatch: pytest.MonkeyPatch) -> None:
    key = recipe.base_key()

    monkeypatch.setattr(recipe, "BUILDER_VERSION", recipe.BUILDER_VERSION + "-next")

    assert recipe.base_key() != key


def test_the_image_key_changes_with_ferrys_files_only() -> None:
    files = recipe.ferry_files()
    key = recipe.image_key("base", files)
    edited = {**files, "usr/local/bin/ferry-postgres": (b"#!/bin/sh\n", 0o755)}
    chmodded = {
        **files,
        "usr/local/bin/ferry-postgres": (files["usr/local/bin/ferry-postgres"][0], 0o700),
    }

    assert key == recipe.image_key("base", recipe.ferry_files())
    assert key.startswith("base-")
    assert recipe.image_key("base", edited) != key
    assert recipe.image_key("base", chmodded) != key


def test_mmdebstrap_installs_postgres_patroni_and_etcd_without_docs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mirror = ("deb http://mirror.example/debian bookworm main",)
    monkeypatch.setattr(recipe, "sources", lambda: mirror)
    argv = recipe.mmdebstrap_argv(Path("/tmp/out.tar"))

    include = next(a for a in argv if a.startswith("--include="))
    assert {"postgresql-15", "patroni", "python3-etcd", "etcd-server"} <= set(
        include.removeprefix("--include=").split(",")
    )
    assert "--variant=essential" in argv
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv
    assert argv[argv.index("bookworm") + 1] == "/tmp/out.tar"
    assert argv[-1:] == list(mirror)  # the machine's own apt sources, last


def test_the_image_ships_the_same_entrypoint_code_the_tests_import() -> None:
    files = recipe.ferry_files()
    here = Path(recipe.__file__).parent

    shipped = files["usr/local/lib/ferry-postgres/ferry/postgres/patroni_config.py"][0]
    assert shipped == (here / "patroni_config.py").read_bytes()
    assert files["usr/local/lib/ferry-postgres/ferry/postgres/__init__.py"] == (b"", 0o644)
    assert b"/usr/bin/python3" in files["usr/local/bin/ferry-postgres"][0]
