"""The line search that lets messages point at the right line."""

from __future__ import annotations

from ferry.config.locate import KeyLocator

TEXT = """\
app = "web"
http_service.internal_port = 3000

[[services]]
  internal_port = 8080
  concurrency = { type = "requests", soft_limit = 5 }

[[services]]
  "internal_port" = 9090
  [services.concurrency]
    soft_limit = 10

[ checks . "db" ]
  port = 5432
"""


def test_top_level_and_dotted_keys() -> None:
    locator = KeyLocator(TEXT)

    assert locator.line_of((), "app") == 1
    assert locator.line_of(("http_service",), "internal_port") == 2


def test_array_entries_are_told_apart() -> None:
    locator = KeyLocator(TEXT)

    assert locator.line_of(("services", 0), "internal_port") == 5
    assert locator.line_of(("services", 1), "internal_port") == 9
    assert locator.line_of(("services", 1)) == 8


def test_inline_tables_and_sub_tables() -> None:
    locator = KeyLocator(TEXT)

    assert locator.line_of(("services", 0, "concurrency"), "soft_limit") == 6
    assert locator.line_of(("services", 1, "concurrency"), "soft_limit") == 11
    assert locator.line_of(("services", 1), "concurrency") == 10


def test_spaced_and_quoted_headers() -> None:
    assert KeyLocator(TEXT).line_of(("checks", "db"), "port") == 14


def test_unknown_places_fall_back_to_the_table_or_nothing() -> None:
    locator = KeyLocator(TEXT)

    assert locator.line_of(("services", 1), "missing") == 8
    assert locator.line_of(("deploy",), "strategy") is None
    assert locator.line_of(("services", 5), "port") is None
