"""How a machine is stopped: a stop request's signal/timeout over the config's stop_config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ferry.model import DesiredState, Machine, MachineConfig, StopConfig
from ferry.model.machine import StopOverride

from ...agent_fakes import host_machine


def machine(stop_config: StopConfig | None, override: StopOverride | None) -> Machine:
    config = MachineConfig(image="x", stop_config=stop_config)
    return host_machine(desired=DesiredState.STOPPED, config=config, stop_override=override)


def test_without_a_request_the_config_decides() -> None:
    config = StopConfig(signal="SIGTERM", timeout="30s")
    assert machine(config, None).effective_stop == config
    assert machine(None, None).effective_stop == StopConfig(signal="SIGINT", timeout="5s")


def test_a_request_with_both_fields_wins_over_the_config() -> None:
    stop = machine(
        StopConfig(signal="SIGTERM", timeout="30s"),
        StopOverride(signal="SIGKILL", timeout="1s"),
    ).effective_stop
    assert (stop.signal, stop.timeout, stop.timeout_seconds) == ("SIGKILL", "1s", 1.0)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (StopOverride(signal="SIGKILL"), ("SIGKILL", "30s")),
        (StopOverride(timeout="1s"), ("SIGTERM", "1s")),
        (StopOverride(timeout="0s"), ("SIGTERM", "0s")),
    ],
)
def test_a_field_the_request_leaves_out_comes_from_the_config(
    override: StopOverride, expected: tuple[str, str]
) -> None:
    stop = machine(StopConfig(signal="SIGTERM", timeout="30s"), override).effective_stop
    assert (stop.signal, stop.timeout) == expected


def test_a_numeric_timeout_is_seconds() -> None:
    assert StopOverride.model_validate({"timeout": 10}).timeout == "10s"
    assert StopOverride.model_validate({"timeout": 0.5}).over(StopConfig()).timeout_seconds == 0.5


@pytest.mark.parametrize("bad", ["soon", "-1s", True, [1]])
def test_a_timeout_that_is_no_duration_is_refused(bad: object) -> None:
    with pytest.raises(ValidationError, match="timeout"):
        StopOverride.model_validate({"timeout": bad})


def test_the_override_survives_a_json_round_trip() -> None:
    m = machine(None, StopOverride(signal="SIGKILL", timeout="1s"))
    again = Machine.model_validate_json(m.model_dump_json())
    assert again.stop_override == m.stop_override
    assert again.effective_stop.signal == "SIGKILL"
