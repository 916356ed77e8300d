"""Which earlier release a rollback deploys again (pure).

``ferry releases rollback [VERSION]`` deploys the image and machine config of
an earlier release as a new release. Without a version it picks the newest
``complete`` release older than the newest release (the one before the
current), as ``fly releases rollback`` does. Each process group gets the
config that release recorded for it (``rollback_configs``); a group running
now that the release did not deploy is refused before anything changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ferry.deploy.plan import DeployPlan, DeployStep
from ferry.errors import NotFoundError, ValidationError
from ferry.model import MachineConfig
from ferry.model.release import Release

__all__ = ["choose_rollback", "configs_by_group", "rollback_configs"]


def configs_by_group(
    plan: DeployPlan, config_for: Callable[[DeployStep], MachineConfig]
) -> dict[str, MachineConfig]:
    """What a release records: per process group the plan deploys (in plan order), the
    config its first step applies."""
    configs: dict[str, MachineConfig] = {}
    for step in plan.steps:
        if step.group not in configs:
            configs[step.group] = config_for(step)
    return configs


def choose_rollback(app: str, releases: Sequence[Release], version: int | None) -> Release:
    """The release to deploy again. ``releases`` in any order.

    Raises ``NotFoundError`` for a version the app does not have (listing the
    ones it has) and ``ValidationError`` for a release still running, one
    recorded without a config, or no earlier complete release to go back to.
    """
    newest_first = sorted(releases, key=lambda r: r.version, reverse=True)
    if version is None:
        earlier = [r for r in newest_first[1:] if r.status == "complete"]
        if not earlier:
            raise ValidationError(
                f"app {app!r} has no earlier complete release to roll back to",
                hint=f"see `ferry releases -a {app}`; name a version to deploy it again",
            )
        target = earlier[0]
    else:
        found = next((r for r in newest_first if r.version == version), None)
        if found is None:
            have = ", ".join(f"v{r.version}" for r in newest_first[:10]) or "none"
            raise NotFoundError(
                f"app {app!r} has no release v{version} (its releases: {have})",
                hint=f"see `ferry releases -a {app}`",
            )
        target = found
    if target.status == "running":
        raise ValidationError(
            f"release v{target.version} of {app!r} is still being deployed",
            hint="wait for it to finish, then roll back",
        )
    if not target.configs:
        raise ValidationError(
            f"release v{target.version} of {app!r} has no recorded machine config",
            hint=f"deploy its image with `ferry deploy --image {target.image}`",
        )
    return target


def rollback_configs(app: str, target: Release, groups: Sequence[str]) -> dict[str, MachineConfig]:
    """The config each of ``groups`` (the process groups the app's machines run now) gets
    back from ``target``, in the order of ``groups``.

    Raises ``ValidationError`` naming every group ``target`` has no config for
    (a release recorded before the group existed, or one from before Ferry
    kept a config per group), with what to do instead.
    """
    recorded = target.configs or {}
    missing = [group for group in groups if group not in recorded]
    if missing:
        had = ", ".join(sorted(recorded)) or "none"
        raise ValidationError(
            f"release v{target.version} of {app!r} has no config for process group"
            f" {', '.join(missing)} (it recorded: {had}): nothing was changed",
            hint=f"remove them first with `ferry scale count {missing[0]}=0 -a {app}`,"
            " or deploy that release's image with fly.toml:"
            f" `ferry deploy --image {target.image}`",
        )
    return {group: recorded[group] for group in groups}
