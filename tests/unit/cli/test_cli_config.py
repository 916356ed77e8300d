"""`ferry config validate` and `ferry config show` (deployed and --local)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ferry.config.remote import config_from_machines
from ferry.errors import ValidationError
from ferry.model import Machine
from tests.unit.cli.cli_fakes import FakeApi, invoke, machine_json

GOOD = """
app = "web"
primary_region = "ams"
[http_service]
  internal_port = 8080
  [[http_service.checks]]
    path = "/"
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_validate_a_good_file_says_valid_and_warns_what_deploy_would_miss(here: Path) -> None:
    (here / "fly.toml").write_text(GOOD)
    result = invoke(FakeApi(), ["config", "validate"])
    assert result.exit_code == 0, result.output
    assert "is valid (1 warnings)" in result.stdout
    assert result.stderr.startswith("Warning: nothing to deploy")
    (here / "Dockerfile").write_text("FROM scratch\n")
    clean = invoke(FakeApi(), ["config", "validate"])
    assert clean.exit_code == 0 and clean.stderr == "" and "is valid" in clean.stdout


def test_validate_a_bad_file_prints_the_error_and_exits_1(here: Path) -> None:
    (here / "fly.toml").write_text('app = "web"\n[http_service]\n  internal_port = "x"\n')
    result = invoke(FakeApi(), ["config", "validate"])
    assert result.exit_code == 1
    assert "Error: " in result.stderr and "internal_port" in result.stderr
    assert "is not valid" in result.stdout


def test_validate_warns_about_missing_app_region_services(here: Path) -> None:
    (here / "cfg.toml").write_text('[build]\n  image = "busybox"\n')
    result = invoke(FakeApi(), ["config", "validate", "-c", "cfg.toml"])
    assert result.exit_code == 0, result.output
    warnings = result.stderr
    assert "no `app`" in warnings and "no `primary_region`" in warnings
    assert "no [http_service] or [[services]]" in warnings


def test_validate_without_a_file_is_an_error(here: Path) -> None:
    result = invoke(FakeApi(), ["config", "validate"])
    assert result.exit_code == 1 and "no fly.toml at" in result.stderr


def test_show_local_prints_the_file_as_json(here: Path) -> None:
    (here / "fly.toml").write_text(GOOD)
    result = invoke(FakeApi(), ["config", "show", "--local"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["app"] == "web" and shown["http_service"]["internal_port"] == 8080


def _machine(machine_id: str, **config: object) -> Machine:
    base = {"image": "reg/web@sha256:" + "0" * 64, "env": {"PRIMARY_REGION": "ams"}}
    return Machine.model_validate(machine_json(machine_id, config={**base, **config}))


def test_config_from_machines_takes_the_most_common_and_warns_about_others() -> None:
    service = {"internal_port": 8080, "ports": [{"port": 80, "handlers": ["http"]}]}
    machines = [
        _machine("m1", services=[service]),
        _machine("m2", services=[service]),
        _machine("m3"),
    ]
    shown, warnings = config_from_machines("web", machines)
    assert shown["app"] == "web" and shown["primary_region"] == "ams"
    assert shown["services"][0]["internal_port"] == 8080
    assert shown["services"][0]["ports"] == [{"port": 80, "handlers": ["http"]}]
    assert shown["vm"] == [{"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}]
    assert len(warnings) == 1 and "machines m3 run a config that differs" in warnings[0]


def test_config_from_machines_shows_command_and_checks() -> None:
    check = {"type": "tcp", "port": 8080}
    shown, warnings = config_from_machines(
        "web",
        [
            _machine(
                "m1",
                init={"cmd": ["serve", "--port", "8080"]},
                checks={"alive": check},
                restart={"policy": "no"},
            )
        ],
    )
    assert warnings == []
    assert shown["restart"] == [{"policy": "never", "retries": 10}]
    assert shown["processes"] == {"app": "serve --port 8080"}
    assert shown["checks"]["alive"]["type"] == "tcp" and "path" not in shown["checks"]["alive"]


def test_config_from_machines_needs_a_machine() -> None:
    with pytest.raises(ValidationError) as caught:
        config_from_machines("web", [])
    assert "has no machines" in caught.value.message and "--local" in (caught.value.hint or "")


def test_show_prints_the_deployed_config(here: Path) -> None:
    api = FakeApi()
    api.add_app("web")
    api.add_machine("aaa111")
    result = invoke(api, ["config", "show", "-a", "web"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["app"] == "web" and shown["env"] == {"A": "1"}
