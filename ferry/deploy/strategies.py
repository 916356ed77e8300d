"""Pure shapes of the canary and bluegreen strategies, on top of a ``DeployPlan``.

As Fly defines them (fly.toml ``[deploy] strategy``):

- ``canary``: one new machine with the new version is created first and must
  start and pass its checks; it is then destroyed and the machines are
  replaced by a ``rolling`` deploy. ``canary_step`` says where it goes.
- ``bluegreen``: for every live (blue) machine a green one with the new version
  is created in the same region; every green must start and pass its checks;
  only then are the blues stopped and destroyed. A failing green destroys the
  greens and leaves every blue untouched. ``bluegreen_phases`` lists both sets.
  Fly refuses bluegreen for an app without health checks (nothing would prove a
  green ready), and so does ``check_strategy``.

Nothing here does I/O; ``rollout.py`` executes the phases.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.deploy.plan import DeployPlan, DeployStep, Strategy
from ferry.errors import ValidationError

__all__ = ["BlueGreenPhases", "bluegreen_phases", "canary_step", "check_strategy"]


@dataclass(frozen=True)
class BlueGreenPhases:
    """``greens`` are created (in plan order) and awaited healthy, then ``blues`` go.

    Each green is a ``create`` step in its blue's region; ``wait_started`` is
    False for the green of a blue the user stopped (it is created stopped, as
    its blue was). ``blues`` are the plan's ``update`` steps, whose machines
    are stopped and destroyed once every green is healthy.
    """

    greens: tuple[DeployStep, ...]
    blues: tuple[DeployStep, ...]


def bluegreen_phases(plan: DeployPlan) -> BlueGreenPhases:
    """A green ``create`` for every step (a region's new first machine is a green with no
    blue); the ``update`` steps are the blues. Pure."""
    greens = tuple(
        DeployStep(kind="create", region=step.region, wait_started=step.wait_started)
        for step in plan.steps
    )
    return BlueGreenPhases(greens=greens, blues=plan.updates)


def canary_step(plan: DeployPlan) -> DeployStep | None:
    """The canary: a new machine in the region of the plan's first running machine.

    ``None`` when the plan updates no running machine (a first deploy, or only
    stopped machines): there is nothing for a canary to protect, and the
    deploy is a plain rolling one, as flyctl does for a new app. Pure.
    """
    for step in plan.updates:
        if step.wait_started:
            return DeployStep(kind="create", region=step.region)
    return None


def check_strategy(strategy: Strategy, check_count: int) -> None:
    """Raise ``ValidationError`` when ``strategy`` cannot be used with ``check_count`` checks.

    bluegreen needs at least one health check (as on Fly): without one, a
    green machine could take the traffic before it can serve.
    """
    if strategy == "bluegreen" and check_count < 1:
        raise ValidationError(
            "the bluegreen strategy needs at least one health check, and this app has none",
            hint="add [[http_service.checks]] (or [checks]) to fly.toml, "
            "or use strategy rolling or canary",
        )
