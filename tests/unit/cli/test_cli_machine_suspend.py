"""`ferry machine suspend ID` posts Fly's suspend route; `ferry status` shows the state."""

from __future__ import annotations

from tests.unit.cli.cli_fakes import FakeApi, invoke


def test_suspend_posts_the_route_and_says_so() -> None:
    api = FakeApi()
    api.add_app("web")
    api.add_machine("aaa111", "ams")
    result = invoke(api, ["machine", "suspend", "aaa111", "-a", "web"])
    assert result.exit_code == 0, result.output
    assert ("POST", "/v1/apps/web/machines/aaa111/suspend", None) in api.requests
    assert "Machine aaa111 is suspending" in result.stdout


def test_status_shows_a_suspended_machine() -> None:
    api = FakeApi()
    api.add_app("web")
    api.add_machine("aaa111", "ams", state="suspended", desired_state="suspended")
    result = invoke(api, ["status", "-a", "web"])
    assert result.exit_code == 0, result.output
    assert "suspended" in result.stdout
