"""`ferry machine stop --signal --timeout` sends them in the stop body, like `fly machine stop`."""

from __future__ import annotations

import pytest

from tests.unit.cli.cli_fakes import FakeApi, invoke

STOP = "/v1/apps/web/machines/aaa111/stop"


@pytest.fixture
def api() -> FakeApi:
    fake = FakeApi()
    fake.add_app("web")
    fake.add_machine("aaa111", "ams")
    return fake


def test_signal_and_timeout_are_passed_through(api: FakeApi) -> None:
    args = ["machine", "stop", "aaa111", "-a", "web", "--signal", "SIGKILL", "--timeout", "1s"]
    result = invoke(api, args)
    assert result.exit_code == 0, result.output
    assert ("POST", STOP, {"signal": "SIGKILL", "timeout": "1s"}) in api.requests
    assert "Machine aaa111 is stopping" in result.stdout


def test_short_signal_flag_and_bare_seconds_timeout(api: FakeApi) -> None:
    result = invoke(
        api, ["machine", "stop", "aaa111", "-a", "web", "-s", "TERM", "--timeout", "10"]
    )
    assert result.exit_code == 0, result.output
    assert ("POST", STOP, {"signal": "TERM", "timeout": "10"}) in api.requests


def test_without_flags_the_body_is_empty_so_the_config_decides(api: FakeApi) -> None:
    assert invoke(api, ["machine", "stop", "aaa111", "-a", "web"]).exit_code == 0
    assert ("POST", STOP, {}) in api.requests
