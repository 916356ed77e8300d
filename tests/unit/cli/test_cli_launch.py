"""`ferry launch` against the in-memory API: what it writes, creates, deploys or refuses."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.unit.cli.cli_fakes import FakeApi, RecordingTools, invoke


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory that is the working directory."""
    directory = tmp_path / "shop"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


def _fly_toml(directory: Path) -> dict[str, object]:
    return tomllib.loads((directory / "fly.toml").read_text())


def test_launch_with_dockerfile_and_yes_creates_writes_and_deploys(
    project: Path,
) -> None:
    (project / "Dockerfile").write_text("FROM scratch\nEXPOSE 9000\n")
    api, tools = FakeApi(), RecordingTools()
    result = invoke(api, ["launch", "--region", "iad", "--yes"], tools)
    assert result.exit_code == 0, result.output
    assert "shop" in api.apps  # named after the directory
    written = _fly_toml(project)
    assert written["app"] == "shop" and written["primary_region"] == "iad"
    assert written["http_service"] == {
        "internal_port": 9000,
        "auto_stop_machines": "stop",
        "auto_start_machines": True,
        "min_machines_running": 0,
    }
    assert (project / "Dockerfile").read_text() == "FROM scratch\nEXPOSE 9000\n"
    assert any(cmd[:2] == ["buildah", "bud"] for cmd in tools.commands)
    created = [m for m in api.machines.values() if m["region"] == "iad"]
    assert len(created) == 1 and "Deployed shop" in result.stdout


def test_no_deploy_writes_and_creates_but_never_deploys(project: Path) -> None:
    (project / "Dockerfile").write_text("FROM scratch\n")
    api = FakeApi()
    result = invoke(api, ["launch", "--name", "web2", "--no-deploy", "--yes"])
    assert result.exit_code == 0, result.output
    assert "web2" in api.apps and api.machines == {}
    assert _fly_toml(project)["app"] == "web2"
    assert "ferry deploy" in result.stdout


def test_declining_the_deploy_question_leaves_the_app_undeployed(project: Path) -> None:
    (project / "Dockerfile").write_text("FROM scratch\n")
    api = FakeApi()
    result = invoke(api, ["launch"], input="n\n")
    assert result.exit_code == 0, result.output
    assert "Would you like to deploy now?" in result.stdout
    assert "shop" in api.apps and api.machines == {}


def test_python_project_gets_a_dockerfile_and_internal_port_flag_wins(project: Path) -> None:
    (project / "requirements.txt").write_text("flask\n")
    api = FakeApi()
    result = invoke(api, ["launch", "--no-deploy", "--internal-port", "5000"])
    assert result.exit_code == 0, result.output
    assert "Detected a Flask app" in result.stdout
    assert "FROM python:" in (project / "Dockerfile").read_text()
    assert _fly_toml(project)["http_service"]["internal_port"] == 5000  # type: ignore[index]


def test_taken_name_is_refused_and_nothing_is_written(project: Path) -> None:
    (project / "requirements.txt").write_text("fastapi\n")
    api = FakeApi()
    api.add_app("shop")
    result = invoke(api, ["launch", "--no-deploy"])
    assert result.exit_code == 1
    assert "Error: an app named 'shop' already exists" in result.stderr
    assert sorted(p.name for p in project.iterdir()) == ["requirements.txt"]


def test_unknown_region_is_refused_before_the_app_is_created(project: Path) -> None:
    (project / "Dockerfile").write_text("FROM scratch\n")
    api = FakeApi()
    result = invoke(api, ["launch", "--region", "xyz", "--no-deploy"])
    assert result.exit_code == 1 and "unknown region 'xyz'" in result.stderr
    assert api.apps == {} and not (project / "fly.toml").exists()


def test_unrecognised_project_is_refused_without_creating_an_app(project: Path) -> None:
    (project / "README.md").write_text("hi")
    api = FakeApi()
    result = invoke(api, ["launch", "--no-deploy"])
    assert result.exit_code == 1 and "could not find a Dockerfile" in result.stderr
    assert api.requests == []


def test_existing_fly_toml_is_kept_when_the_user_declines(project: Path) -> None:
    original = 'app = "old"\nprimary_region = "ams"\n[build]\n  image = "busybox"\n'
    (project / "fly.toml").write_text(original)
    api = FakeApi()
    result = invoke(api, ["launch", "--no-deploy"], input="n\n")
    assert result.exit_code == 1
    assert "Would you like to copy its configuration" in result.stdout
    assert "already exists for app old" in result.stderr and "--copy-config" in result.stderr
    assert (project / "fly.toml").read_text() == original and api.apps == {}


def test_copy_config_launches_a_new_app_from_the_existing_file(project: Path) -> None:
    original = '# keep me\napp = "old"\nprimary_region = "ams"\n[build]\n  image = "busybox"\n'
    (project / "fly.toml").write_text(original)
    api = FakeApi()
    result = invoke(api, ["launch", "--copy-config", "--name", "new", "--no-deploy"])
    assert result.exit_code == 0, result.output
    assert "new" in api.apps
    text = (project / "fly.toml").read_text()
    assert "# keep me" in text and tomllib.loads(text)["app"] == "new"
    assert tomllib.loads(text)["primary_region"] == "ams"
    assert not (project / "Dockerfile").exists()  # [build] image: nothing to build


def test_answering_yes_copies_the_existing_file_and_asks_about_deploying(
    project: Path,
) -> None:
    (project / "fly.toml").write_text('app = "old"\n[build]\n  image = "busybox"\n')
    api = FakeApi()
    result = invoke(api, ["launch", "--region", "sin"], input="y\nn\n")
    assert result.exit_code == 0, result.output
    assert "old" in api.apps and api.machines == {}  # the file's name, not deployed
    written = _fly_toml(project)
    assert written["app"] == "old" and written["primary_region"] == "sin"


def test_now_and_no_deploy_together_are_refused(project: Path) -> None:
    api = FakeApi()
    result = invoke(api, ["launch", "--now", "--no-deploy"])
    assert result.exit_code == 1 and "contradict" in result.stderr and api.requests == []
