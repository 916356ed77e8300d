"""[deploy]: every Fly strategy, and release_command with its timeout, as flyctl reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.config import parse_app_config
from ferry.config.app_config import DeployConfig


def deploy(text: str) -> DeployConfig:
    toml = 'app = "web"\n[deploy]\n' + text
    return parse_app_config(toml, filename="fly.toml", base_dir=Path("/srv")).deploy


@pytest.mark.parametrize("strategy", ["rolling", "immediate", "canary", "bluegreen"])
def test_every_fly_strategy_is_read(strategy: str) -> None:
    assert deploy(f'strategy = "{strategy}"\n').strategy == strategy


def test_release_command_is_split_as_a_shell_would_and_times_out_after_five_minutes() -> None:
    parsed = deploy("release_command = \"bin/rails db:migrate --trace 'a b'\"\n")
    assert parsed.release_command == ["bin/rails", "db:migrate", "--trace", "a b"]
    assert parsed.release_command_timeout == 300.0


def test_release_command_timeout_is_a_duration() -> None:
    parsed = deploy('release_command = "migrate"\nrelease_command_timeout = "1m30s"\n')
    assert parsed.release_command_timeout == 90.0


def test_no_deploy_section_means_rolling_without_a_release_command() -> None:
    config = parse_app_config('app = "web"\n', filename="fly.toml", base_dir=Path("/srv"))
    assert config.deploy.strategy == "rolling" and config.deploy.release_command is None
