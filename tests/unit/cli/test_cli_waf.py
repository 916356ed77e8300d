"""`ferry waf events`: --since as a duration or a time, bad values refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ferry.cli.waf import parse_since
from ferry.errors import ValidationError

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", NOW - timedelta(minutes=10)),
        ("2h", NOW - timedelta(hours=2)),
        ("90s", NOW - timedelta(seconds=90)),
        ("2026-12-03T10:00:00Z", datetime(2026, 12, 3, 10, tzinfo=UTC)),
        ("2026-12-03T10:00:00+01:00", datetime(2026, 12, 3, 9, tzinfo=UTC)),
        ("2026-12-03T10:00:00", datetime(2026, 12, 3, 10, tzinfo=UTC)),  # UTC when unsaid
    ],
)
def test_since_is_a_duration_back_from_now_or_a_time(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "10 minutes", "10x", ""])
def test_anything_else_is_refused_with_examples(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_since(text, NOW)
    assert "10m" in (caught.value.hint or "") or "duration" in str(caught.value)
