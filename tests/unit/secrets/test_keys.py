"""The control plane's key at start: created once, refused when missing or wrong."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ferry.errors import ConfigError, UnavailableError
from ferry.secrets import SecretsKey
from ferry.secrets.keys import (
    KEY_ENV,
    hold_server_lock,
    open_secrets_key,
    pending_path,
    write_key_file,
)


def test_the_first_start_creates_an_owner_only_key_file(tmp_path: Path) -> None:
    source = open_secrets_key(tmp_path, {}, environ={})
    path = tmp_path / "secrets.key"
    assert source.path == path and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert open_secrets_key(tmp_path, {source.key.id: 3}, environ={}).key.id == source.key.id


def test_a_missing_key_with_stored_secrets_refuses_naming_file_and_variable(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        open_secrets_key(tmp_path, {"0123456789abcdef": 2}, environ={})
    message = str(caught.value)
    assert "2 app secrets are stored" in message
    assert str(tmp_path / "secrets.key") in message and KEY_ENV in message
    assert "restore the key file" in message
    assert not (tmp_path / "secrets.key").exists()  # no new key that would hide the problem


def test_a_wrong_key_refuses_with_both_key_ids(tmp_path: Path) -> None:
    key = SecretsKey.generate()
    write_key_file(tmp_path / "secrets.key", key)
    with pytest.raises(ConfigError) as caught:
        open_secrets_key(tmp_path, {"feedfacefeedface": 1}, environ={})
    assert key.id in str(caught.value) and "feedfacefeedface" in str(caught.value)
    assert key.export() not in str(caught.value)


def test_a_key_file_that_holds_no_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secrets.key").write_text("not base64 at all\n")
    with pytest.raises(ConfigError, match="does not hold a key: it is not base64"):
        open_secrets_key(tmp_path, {}, environ={})


def test_the_environment_wins_over_the_file_and_is_checked(tmp_path: Path) -> None:
    from_env = SecretsKey.generate()
    write_key_file(tmp_path / "secrets.key", SecretsKey.generate())
    source = open_secrets_key(tmp_path, {from_env.id: 1}, environ={KEY_ENV: from_env.export()})
    assert source.key.id == from_env.id and source.path is None
    with pytest.raises(ConfigError, match=f"\\${KEY_ENV} does not hold a secrets key"):
        open_secrets_key(tmp_path, {}, environ={KEY_ENV: "short"})


def test_a_key_file_named_by_the_environment_is_used(tmp_path: Path) -> None:
    elsewhere = tmp_path / "keys" / "ferry.key"
    source = open_secrets_key(tmp_path, {}, environ={"FERRY_SECRETS_KEY_FILE": str(elsewhere)})
    assert source.path == elsewhere and elsewhere.exists()


def test_a_rotation_cut_short_after_its_commit_is_finished_at_start(tmp_path: Path) -> None:
    old, new = SecretsKey.generate(), SecretsKey.generate()
    path = tmp_path / "secrets.key"
    write_key_file(path, old)
    write_key_file(pending_path(path), new)
    source = open_secrets_key(tmp_path, {new.id: 4}, environ={})
    assert source.key.id == new.id
    assert SecretsKey.from_text(path.read_text()).id == new.id
    assert not pending_path(path).exists()


def test_one_holder_of_the_server_lock_at_a_time(tmp_path: Path) -> None:
    # flock locks belong to an open file: a second open, even in this process, is refused.
    with (
        hold_server_lock(tmp_path),
        pytest.raises(UnavailableError, match="another control plane"),
        hold_server_lock(tmp_path),
    ):
        pass
    with hold_server_lock(tmp_path):
        pass
