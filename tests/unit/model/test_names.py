"""App and machine names: Fly's rules, matched against the whole string."""

from __future__ import annotations

import pytest

from ferry.model.names import app_name_problem, machine_name_problem


@pytest.mark.parametrize("name", ["web", "my-app-2", "a1", "9lives", "a" * 63])
def test_valid_app_names(name: str) -> None:
    assert app_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("web\n", "has characters other than lowercase letters, digits and '-'"),
        ("web\r\n", "has characters other than lowercase letters, digits and '-'"),
        ("Web", "has uppercase letters"),
        ("MY-APP", "has uppercase letters"),
        ("a" * 64, "is longer than 63 characters (64)"),
        ("-web", "starts or ends with '-'"),
        ("web-", "starts or ends with '-'"),
        ("w", "is shorter than 2 characters"),
        ("", "is shorter than 2 characters"),
        ("web_1", "has characters other than lowercase letters, digits and '-'"),
        ("wéb", "has characters other than lowercase letters, digits and '-'"),
        ("web.app", "has characters other than lowercase letters, digits and '-'"),
    ],
)
def test_invalid_app_names_say_what_is_wrong(name: str, problem: str) -> None:
    assert app_name_problem(name) == problem


@pytest.mark.parametrize("name", ["m1", "Web.1", "worker_2", "a" * 63])
def test_valid_machine_names(name: str) -> None:
    assert machine_name_problem(name) is None


@pytest.mark.parametrize("name", ["m1\n", "", "-m1", ".m1", "a b", "a" * 64, "m1/x"])
def test_invalid_machine_names(name: str) -> None:
    assert machine_name_problem(name) is not None
