"""Which release `ferry releases rollback [VERSION]` deploys again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ferry.deploy.plan import DeployPlan, DeployStep
from ferry.deploy.rollback import choose_rollback, configs_by_group, rollback_configs
from ferry.errors import NotFoundError, ValidationError
from ferry.model import MachineConfig
from ferry.model.release import Release, ReleaseStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def group_config(image: str, group: str) -> MachineConfig:
    return MachineConfig.model_validate(
        {
            "image": image,
            "init": {"cmd": [f"bin/{group}"]},
            "metadata": {"fly_process_group": group},
        }
    )


def release(
    version: int, status: ReleaseStatus, *, config: bool = True, groups: tuple[str, ...] = ()
) -> Release:
    image = f"reg/web@sha256:{version:064d}"
    configs = {"app": MachineConfig(image=image)} if config else None
    if groups:
        configs = {group: group_config(image, group) for group in groups}
    return Release(
        app_name="web",
        version=version,
        image=image,
        status=status,
        strategy="rolling",
        user="admin",
        created_at=T0,
        updated_at=T0,
        configs=configs,
    )


HISTORY = [release(1, "complete"), release(2, "failed"), release(3, "complete")]


def test_without_a_version_the_previous_complete_release_is_chosen() -> None:
    assert choose_rollback("web", HISTORY, None).version == 1
    assert choose_rollback("web", [*HISTORY, release(4, "failed")], None).version == 3


def test_a_named_version_is_chosen_even_the_current_one() -> None:
    assert choose_rollback("web", HISTORY, 2).version == 2
    assert choose_rollback("web", HISTORY, 3).version == 3


def test_a_version_the_app_does_not_have_is_not_found_listing_what_it_has() -> None:
    with pytest.raises(NotFoundError, match=r"has no release v9 \(its releases: v3, v2, v1\)"):
        choose_rollback("web", HISTORY, 9)


def test_nothing_earlier_to_go_back_to_is_refused() -> None:
    with pytest.raises(ValidationError, match="no earlier complete release"):
        choose_rollback("web", [release(1, "complete"), release(2, "failed")][1:], None)
    with pytest.raises(ValidationError, match="no earlier complete release"):
        choose_rollback("web", [], None)


def test_a_running_release_or_one_without_config_is_refused() -> None:
    with pytest.raises(ValidationError, match="still being deployed"):
        choose_rollback("web", [release(1, "running")], 1)
    with pytest.raises(ValidationError, match="no recorded machine config") as info:
        choose_rollback("web", [release(1, "complete", config=False)], 1)
    assert info.value.hint and "ferry deploy --image" in info.value.hint


def test_a_deploy_records_the_config_of_each_group_it_deploys() -> None:
    steps = (
        DeployStep(kind="update", region="ams", machine_id="w1", group="web"),
        DeployStep(kind="update", region="ams", machine_id="k1", group="worker"),
        DeployStep(kind="update", region="iad", machine_id="w2", group="web"),
    )
    plan = DeployPlan(strategy="rolling", regions=("ams", "iad"), steps=steps)
    seen: list[str] = []

    def config_for(step: DeployStep) -> MachineConfig:
        seen.append(step.machine_id or "")
        return group_config("img", step.group)

    configs = configs_by_group(plan, config_for)
    assert list(configs) == ["web", "worker"] and seen == ["w1", "k1"]
    assert configs["worker"].init.cmd == ["bin/worker"]


def test_each_group_gets_its_own_config_back() -> None:
    target = release(1, "complete", groups=("web", "worker"))
    configs = rollback_configs("web", target, ["worker", "web"])
    assert list(configs) == ["worker", "web"]
    assert {g: c.init.cmd for g, c in configs.items()} == {
        "worker": ["bin/worker"],
        "web": ["bin/web"],
    }


def test_a_group_the_release_did_not_deploy_is_refused_naming_it() -> None:
    target = release(1, "complete", groups=("web",))
    with pytest.raises(ValidationError) as info:
        rollback_configs("web", target, ["web", "worker", "cron"])
    assert info.value.message == (
        "release v1 of 'web' has no config for process group worker, cron"
        " (it recorded: web): nothing was changed"
    )
    assert info.value.hint and "ferry scale count worker=0 -a web" in info.value.hint
