"""Secret names, value limits and the NAME=VALUE formats: errors name, never show, values."""

from __future__ import annotations

import pytest

from ferry.agent.runner import HostIdentity, StepRunner
from ferry.errors import ValidationError
from ferry.secrets import (
    MAX_VALUE_BYTES,
    check_secret_name,
    check_secret_value,
    parse_assignments,
    parse_import,
)
from ferry.secrets.names import RESERVED_NAMES, check_total

from ...agent_fakes import host_machine


@pytest.mark.parametrize("name", ["DATABASE_URL", "_x", "a1", "FLY_API_TOKEN", "lower_case"])
def test_environment_variable_names_are_accepted(name: str) -> None:
    assert check_secret_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("1ABC", "not a valid environment variable name"),
        ("MY-KEY", "not a valid environment variable name"),
        ("A B", "not a valid environment variable name"),
        ("A=B", "not a valid environment variable name"),
        ("", "needs a name"),
        ("X" * 129, "longer than 128"),
        ("FERRY_HOME", "reserved"),
        ("ferry_x", "reserved"),
        ("FLY_REGION", "reserved"),
        ("FLY_MACHINE_ID", "reserved"),
    ],
)
def test_bad_names_are_refused_saying_why(name: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        check_secret_name(name)


def test_every_fly_variable_the_agent_sets_is_reserved() -> None:
    runner = StepRunner(HostIdentity("h", "ams"), None, None, None, None, {})  # type: ignore[arg-type]
    env = runner._machine_env(host_machine())
    assert {k for k in env if k.startswith("FLY_")} <= RESERVED_NAMES


def test_secrets_override_the_config_env_and_the_platform_overrides_both() -> None:
    runner = StepRunner(HostIdentity("h", "ams"), None, None, None, None, {})  # type: ignore[arg-type]
    machine = host_machine()
    machine = machine.model_copy(
        update={"config": machine.config.model_copy(update={"env": {"MODE": "env", "K": "e"}})}
    )
    env = runner._machine_env(machine, {"MODE": "secret", "FLY_REGION": "forged"})
    assert env["MODE"] == "secret" and env["K"] == "e"
    assert env["FLY_REGION"] == machine.region


def test_values_over_the_limit_or_with_nul_are_refused_naming_only_the_secret() -> None:
    assert check_secret_value("A", "x" * MAX_VALUE_BYTES) == "x" * MAX_VALUE_BYTES
    big = "s3cr3t" * (MAX_VALUE_BYTES // 6 + 1)
    with pytest.raises(ValidationError, match=r"secret BIG is \d+ bytes; the limit is 65536") as e:
        check_secret_value("BIG", big)
    assert "s3cr3t" not in str(e.value)
    with pytest.raises(ValidationError, match="NUL"):
        check_secret_value("A", "a\0b")
    # Bytes, not characters: 22k three-byte characters are 66k bytes.
    with pytest.raises(ValidationError):
        check_secret_value("A", "€" * 22_000)


def test_an_apps_total_is_bounded() -> None:
    check_total("web", {f"K{i}": 60_000 for i in range(16)})
    with pytest.raises(ValidationError, match="app web's secrets would take"):
        check_total("web", {f"K{i}": 65_000 for i in range(17)})
    with pytest.raises(ValidationError, match="501 secrets"):
        check_total("web", {f"K{i}": 1 for i in range(501)})


def test_assignments_split_at_the_first_equals_and_never_echo_a_value() -> None:
    assert parse_assignments(["A=1", "B=x=y", "C=", "A=2"]) == {"A": "2", "B": "x=y", "C": ""}
    with pytest.raises(ValidationError, match="argument 2 is not NAME=VALUE") as caught:
        parse_assignments(["A=1", "hunter2"])
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValidationError, match="'1A'"):
        parse_assignments(["1A=hunter2"])


def test_the_import_format_reads_comments_quotes_and_multi_line_values() -> None:
    text = (
        "# a comment\n"
        "\n"
        "PLAIN=abc # kept\n"
        'QUOTED="with spaces"\n'
        "SINGLE='x'\n"
        'PEM="""-----BEGIN KEY-----\n'
        "line two\n"
        '-----END KEY-----"""\n'
        'ONE="""inline"""\n'
        "URL=postgres://u:p@h/db?x=1\n"
    )
    assert parse_import(text) == {
        "PLAIN": "abc # kept",
        "QUOTED": "with spaces",
        "SINGLE": "x",
        "PEM": "-----BEGIN KEY-----\nline two\n-----END KEY-----",
        "ONE": "inline",
        "URL": "postgres://u:p@h/db?x=1",
    }


def test_import_errors_name_the_line_never_its_content() -> None:
    with pytest.raises(ValidationError, match="line 2 of the input") as caught:
        parse_import("A=1\nhunter2\n")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValidationError, match="no closing"):
        parse_import('PEM="""abc\nhunter2\n')
    with pytest.raises(ValidationError, match="reserved"):
        parse_import("FERRY_X=1\n")
