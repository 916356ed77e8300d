"""Finding and reading fly.toml from disk; the package's public names."""

from __future__ import annotations

from pathlib import Path

import pytest

import ferry.config
from ferry.config import find_config, load_app_config
from ferry.errors import ConfigError


def test_public_names() -> None:
    assert set(ferry.config.__all__) >= {
        "AppConfig",
        "find_config",
        "load_app_config",
        "parse_app_config",
    }
    for name in ferry.config.__all__:
        assert hasattr(ferry.config, name)


def test_find_config_returns_fly_toml_in_the_directory(tmp_path: Path) -> None:
    assert find_config(tmp_path) is None
    (tmp_path / "fly.toml").write_text('app = "web"\n')

    assert find_config(tmp_path) == tmp_path / "fly.toml"


def test_load_resolves_dockerfile_next_to_fly_toml(tmp_path: Path) -> None:
    path = tmp_path / "fly.toml"
    path.write_text('app = "web"\n[build]\ndockerfile = "docker/Dockerfile"\n')

    config = load_app_config(path)

    assert config.app == "web"
    assert config.build.dockerfile == tmp_path / "docker" / "Dockerfile"
    assert config.build.dockerfile.is_absolute()


def test_load_accepts_the_directory_of_fly_toml(tmp_path: Path) -> None:
    (tmp_path / "fly.toml").write_text('app = "web"\n')

    assert load_app_config(tmp_path).app == "web"


def test_errors_name_the_path_that_was_loaded(tmp_path: Path) -> None:
    path = tmp_path / "fly.toml"
    path.write_text('app = "web"\n[http_service]\ninternal_port = "x"\n')

    with pytest.raises(ConfigError, match=rf"^{path}:3: \[http_service\] internal_port"):
        load_app_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file") as caught:
        load_app_config(tmp_path / "fly.toml")

    assert caught.value.hint is not None


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "fly.toml"
    path.write_bytes(b'app = "\xff"\n')

    with pytest.raises(ConfigError, match="not UTF-8"):
        load_app_config(path)
