"""`ferry deploy` records releases; `ferry releases` lists them; rollback deploys one again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ferry.model import MachineConfig
from ferry.model.release import configs_of_legacy
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
    assert rows[1]["configs"]["app"]["env"]["GREETING"] == "v2"


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


TWO_GROUPS = """
app = "web"
primary_region = "ams"

[build]
  image = "{registry}/web:v1"

[processes]
  web = "bin/server {version}"
  worker = "bin/worker {version}"

[http_service]
  internal_port = 8080
  processes = ["web"]
"""


def commands(api: FakeApi) -> dict[str, list[str]]:
    """Each machine's process group → its command (one machine per group here)."""
    return {
        m["config"]["metadata"]["fly_process_group"]: m["config"]["init"]["cmd"]
        for m in api.machines.values()
    }


def test_a_two_group_deploy_records_each_groups_config(project: Path) -> None:
    (project / "fly.toml").write_text(TWO_GROUPS.format(registry=REGISTRY, version="v1"))
    api = FakeApi()
    assert invoke(api, ["deploy"]).exit_code == 0
    configs = api.releases["web"][0]["configs"]
    assert sorted(configs) == ["web", "worker"]
    assert configs["web"]["init"]["cmd"] == ["bin/server", "v1"] and configs["web"]["services"]
    assert configs["worker"]["init"]["cmd"] == ["bin/worker", "v1"]
    assert configs["worker"]["services"] == []


def test_rollback_of_a_two_group_app_gives_each_machine_its_own_groups_command(
    project: Path,
) -> None:
    api = FakeApi()
    for version in ("v1", "v2"):
        (project / "fly.toml").write_text(TWO_GROUPS.format(registry=REGISTRY, version=version))
        assert invoke(api, ["deploy"]).exit_code == 0
    assert commands(api) == {"web": ["bin/server", "v2"], "worker": ["bin/worker", "v2"]}

    result = invoke(api, ["releases", "rollback", "-a", "web"])

    assert result.exit_code == 0, result.output
    assert commands(api) == {"web": ["bin/server", "v1"], "worker": ["bin/worker", "v1"]}
    worker = next(
        m for m in api.machines.values() if m["config"]["metadata"]["fly_process_group"] == "worker"
    )
    assert worker["config"]["services"] == []
    assert sorted(api.releases["web"][-1]["configs"]) == ["web", "worker"]


def test_an_old_single_config_release_still_rolls_back_a_one_group_app(project: Path) -> None:
    api = FakeApi()
    invoke(api, ["deploy"])
    (project / "fly.toml").write_text(FLY_TOML.format(registry=REGISTRY, greeting="v2"))
    invoke(api, ["deploy"])
    # v1 as recorded before configs per group: one config, here without group metadata
    # (an `--image` deploy copied it from a machine); the store reads it as group `app`'s.
    single = dict(api.releases["web"][0]["configs"]["app"], metadata={})
    legacy = configs_of_legacy(MachineConfig.model_validate(single))
    api.releases["web"][0]["configs"] = {g: c.model_dump(mode="json") for g, c in legacy.items()}

    result = invoke(api, ["releases", "rollback", "1", "-a", "web"])

    assert result.exit_code == 0, result.output
    assert all(m["config"]["env"]["GREETING"] == "v1" for m in api.machines.values())


def test_rollback_to_a_release_without_a_group_running_now_names_it_and_changes_nothing(
    project: Path,
) -> None:
    api = FakeApi()
    invoke(api, ["deploy"])  # v1: one group, `app`
    (project / "fly.toml").write_text(TWO_GROUPS.format(registry=REGISTRY, version="v2"))
    invoke(api, ["scale", "count", "app=0", "--yes"])
    assert invoke(api, ["deploy"]).exit_code == 0  # v2: web + worker
    before = {k: json.loads(json.dumps(v)) for k, v in api.machines.items()}

    result = invoke(api, ["releases", "rollback", "1", "-a", "web"])

    assert result.exit_code == 1
    assert (
        "release v1 of 'web' has no config for process group web, worker (it recorded: app):"
        " nothing was changed" in result.stderr
    )
    assert "ferry scale count web=0 -a web" in result.stderr
    assert api.machines == before and len(api.releases["web"]) == 2


def test_rollback_leaves_a_group_no_machine_runs_now_alone_and_says_so(project: Path) -> None:
    api = FakeApi()
    for version in ("v1", "v2"):
        (project / "fly.toml").write_text(TWO_GROUPS.format(registry=REGISTRY, version=version))
        assert invoke(api, ["deploy"]).exit_code == 0
    assert invoke(api, ["scale", "count", "worker=0", "--yes"]).exit_code == 0

    result = invoke(api, ["releases", "rollback", "1", "-a", "web"])

    assert result.exit_code == 0, result.output
    assert "v1 also ran process group worker, which no machine runs now: not recreated" in (
        result.stdout
    )
    assert commands(api) == {"web": ["bin/server", "v1"]}
    assert sorted(api.releases["web"][-1]["configs"]) == ["web"]
