"""Key rotation and the start checks on a real store: re-encrypted, or refused, never half."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ferry.cli.main import app as cli_app
from ferry.errors import ConfigError, UnavailableError
from ferry.model import App, Organization
from ferry.secrets import SealedValue, SecretsKey
from ferry.secrets.keys import KEY_ENV, hold_server_lock, open_secrets_key, write_key_file
from ferry.server.clock import SystemClock
from ferry.server.secrets_rotation import rotate_secrets_key
from ferry.server.secrets_service import SecretsService
from ferry.store import SqliteStore

VALUE = "rotate-me-value-42"


def _home_with_secret(tmp_path: Path) -> tuple[Path, SecretsKey]:
    home = tmp_path / "home"
    server_dir = home / "server"
    store = SqliteStore(server_dir / "state.db")
    try:
        key = open_secrets_key(server_dir, {}, environ={}).key
        org = Organization(name="Personal", slug="personal")
        store.create_app(App(id="a1", name="web", organization=org, created_at=SystemClock().now()))
        SecretsService(store, SystemClock(), key).change("web", {"API_KEY": VALUE})
    finally:
        store.close()
    return home, key


def _opened(home: Path, key: SecretsKey) -> dict[str, str]:
    """The app's values, opened with ``key`` (``WrongKeyError`` if they do not open)."""
    store = SqliteStore(home / "server" / "state.db")
    try:
        _versions, rows = store.list_secrets("web")
        return {
            r.name: key.open(r.app_name, r.name, SealedValue(r.ciphertext, r.nonce, r.key_id, ""))
            for r in rows
        }
    finally:
        store.close()


def test_rotation_reencrypts_every_value_and_replaces_the_key_file(tmp_path: Path) -> None:
    home, old = _home_with_secret(tmp_path)
    done = rotate_secrets_key(home, environ={})
    assert done.resealed == 1 and done.old_key_id == old.id != done.new_key_id
    key_file = home / "server" / "secrets.key"
    new = SecretsKey.from_text(key_file.read_text())
    assert new.id == done.new_key_id
    assert _opened(home, new) == {"API_KEY": VALUE}
    store = SqliteStore(home / "server" / "state.db")
    try:
        assert store.secret_key_ids() == {new.id: 1}
    finally:
        store.close()
    # The old key no longer starts the control plane; the new one does.
    with pytest.raises(ConfigError, match="is not the one"):
        open_secrets_key(home / "server", {new.id: 1}, environ={KEY_ENV: old.export()})


def test_a_key_from_the_environment_rotates_into_the_named_file(tmp_path: Path) -> None:
    home, old = _home_with_secret(tmp_path)
    (home / "server" / "secrets.key").unlink()
    env = {KEY_ENV: old.export()}
    with pytest.raises(ConfigError, match="--new-key-file"):
        rotate_secrets_key(home, environ=env)
    given = SecretsKey.generate()
    write_key_file(tmp_path / "new.key", given)
    done = rotate_secrets_key(home, new_key_file=tmp_path / "new.key", environ=env)
    assert done.new_key_id == given.id and done.key_location == f"${KEY_ENV}"
    assert _opened(home, given) == {"API_KEY": VALUE}


def test_rotation_refuses_while_a_control_plane_holds_the_directory(tmp_path: Path) -> None:
    home, _old = _home_with_secret(tmp_path)
    with hold_server_lock(home / "server"), pytest.raises(UnavailableError):
        rotate_secrets_key(home, environ={})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("damage", ["missing", "wrong"])
def test_ferry_server_refuses_to_start_with_a_missing_or_wrong_key(
    tmp_path: Path, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _key = _home_with_secret(tmp_path)
    key_file = home / "server" / "secrets.key"
    if damage == "missing":
        key_file.unlink()
    else:
        write_key_file(key_file, SecretsKey.generate())
    monkeypatch.delenv(KEY_ENV, raising=False)
    result = CliRunner().invoke(
        cli_app, ["server", "--home", str(home), "--listen", f"127.0.0.1:{_free_port()}"]
    )
    assert result.exit_code == 1
    said = result.output
    assert str(key_file) in said
    assert ("no secrets key" if damage == "missing" else "is not the one") in said
    assert VALUE not in said


def test_the_rotate_key_command_says_what_it_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, old = _home_with_secret(tmp_path)
    monkeypatch.delenv(KEY_ENV, raising=False)
    result = CliRunner().invoke(cli_app, ["secrets", "rotate-key", "--home", str(home)])
    assert result.exit_code == 0, result.output
    new = SecretsKey.from_text((home / "server" / "secrets.key").read_text())
    assert f"Re-encrypted 1 secret(s): key {old.id} -> {new.id}" in result.output
    assert VALUE not in result.output and new.export() not in result.output
    assert _opened(home, new) == {"API_KEY": VALUE}
