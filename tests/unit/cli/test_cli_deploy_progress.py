"""The lines `ferry deploy` prints for bluegreen's cordon steps."""

from __future__ import annotations

import pytest

from ferry.cli.deploy import _print_progress
from ferry.deploy.plan import DeployStep
from ferry.deploy.rollout import Progress
from tests.unit.deploy.deploy_fakes import make_machine


def test_bluegreen_says_when_a_green_takes_traffic_and_a_blue_stops_getting_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    green = DeployStep(kind="create", region="ams")
    blue = DeployStep(kind="update", region="ams", machine_id="b1")
    _print_progress(Progress(green, "ready", make_machine("g1")))
    _print_progress(Progress(blue, "cordoned", make_machine("b1")))
    _print_progress(Progress(blue, "note", make_machine("b2"), detail="could not cordon b2: gone"))
    assert capsys.readouterr().out.splitlines() == [
        "  g1 uncordoned: the edges route to it",
        "  b1 cordoned: no new requests",
        "  could not cordon b2: gone",
    ]
