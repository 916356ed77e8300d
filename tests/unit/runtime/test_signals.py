"""Signal names a machine's stop config may use."""

from __future__ import annotations

import pytest

from ferry.errors import ValidationError
from ferry.runtime.runc import parse_signal


@pytest.mark.parametrize("name", ["SIGTERM", "term", "15", " sigint "])
def test_signal_names_are_understood(name: str) -> None:
    assert parse_signal(name).name in ("SIGTERM", "SIGINT")


def test_unknown_signal_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="SIGFOO"):
        parse_signal("SIGFOO")
