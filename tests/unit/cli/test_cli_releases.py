"""`ferry deploy` records releases; `ferry releases` lists them; rollback deploys one again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.cli.cli_fakes import DIGEST, REGISTRY, FakeApi, invoke

FLY_TOML = """
app = "web"
primary_region = "ams"

[build]
  image = "{registry}/web:v1"

[env]
  GREETING = "{greeting}"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "fly.toml").write_text(FLY_TOML.format(registry=REGISTRY, greeting="v1"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_each_deploy_records_a_release_and_marks_it_complete(project: Path) -> None:
    api = FakeApi()
    first = invoke(api, ["deploy"])
    assert first.exit_code == 0, first.output
    assert "Release v1: deploying web to ams" in first.stdout and "Deployed web v1" in first.stdout
    (project / "fly.toml").write_text(FLY_TOML.format(registry=REGISTRY, greeting="v2"))
    assert invoke(api, ["deploy"]).exit_code == 0
    rows = api.releases["web"]
    assert [(r["version"], r["status"]) for r in rows] == [(1, "complete"), (2, "complete")]
    assert rows[1]["image"] == f"{REGISTRY}/web@{DIGEST}"
    assert rows[1]["config"]["env"]["GREETING"] == "v2"


def test_ferry_releases_shows_version_status_image_who_and_when(project: Path) -> None:
    api = FakeApi()
    invoke(api, ["deploy"])
    listing = invoke(api, ["releases", "-a", "web"])
    assert listing.exit_code == 0, listing.output
    header, row = listing.stdout.strip().splitlines()[:2]
    for column in ("VERSION", "STATUS", "IMAGE", "USER", "WHEN"):
        assert column in header
    assert row.split()[:3] == ["v1", "complete", "rolling"]
    assert "sha256:cdcdcdcdcdcd" in row and "admin" in row


def test_bluegreen_without_checks_is_refused_before_the_app_is_created(project: Path) -> None:
    api = FakeApi()
    result = invoke(api, ["deploy", "--strategy", "bluegreen"])
    assert result.exit_code == 1
    assert "bluegreen strategy needs at least one health check" in result.stderr
    assert api.apps == {} and api.releases == {}


def test_rollback_to_a_missing_release_changes_nothing(project: Path) -> None:
    api = FakeApi()
    invoke(api, ["deploy"])
    before = {k: dict(v) for k, v in api.machines.items()}
    result = invoke(api, ["releases", "rollback", "9", "-a", "web"])
    assert result.exit_code == 1
    assert "app 'web' has no release v9 (its releases: v1)" in result.stderr
    assert api.machines == before and len(api.releases["web"]) == 1


def test_rollback_deploys_the_earlier_release_config_as_a_new_release(project: Path) -> None:
    api = FakeApi()
    invoke(api, ["deploy"])
    (project / "fly.toml").write_text(FLY_TOML.format(registry=REGISTRY, greeting="v2"))
    invoke(api, ["deploy"])
    result = invoke(api, ["releases", "rollback", "-a", "web"])
    assert result.exit_code == 0, result.output
    assert "Rolled web back to v1 as v3" in result.stdout
    assert all(m["config"]["env"]["GREETING"] == "v1" for m in api.machines.values())
    newest = api.releases["web"][-1]
    assert (newest["description"], newest["status"]) == ("rollback to v1", "complete")
