"""``[[statics]]`` → ``StaticConfig``: files of the image the edge serves itself.

Fly's keys: ``guest_path`` (a directory in the image), ``url_prefix`` (the URL
path served from it), ``index_document`` (the file that answers a directory
path) and ``tigris_bucket`` (Fly's object storage: Ferry has none, refused).
At most ``MAX_STATICS`` per app, as on Fly. See docs/edge.md "Statics".
"""

from __future__ import annotations

from pydantic import ValidationError as PydanticValidationError

from ferry.config.reader import Table
from ferry.errors import ConfigError
from ferry.model.machine_statics import MAX_STATICS, StaticConfig

__all__ = ["STATICS_KEYS", "parse_statics"]

STATICS_KEYS = ("guest_path", "url_prefix", "index_document")
_UNSUPPORTED = {
    "tigris_bucket": "Ferry has no object storage; put the files in the image and set guest_path",
}


def parse_statics(tables: list[Table]) -> list[StaticConfig]:
    """Each ``[[statics]]`` table, in file order. Pure.

    Raises ``ConfigError`` (file, line, key) for an unknown or refused key, a
    missing ``guest_path`` or ``url_prefix``, a relative path, a bad
    ``index_document``, two entries with the same ``url_prefix``, or more than
    ``MAX_STATICS`` entries.
    """
    statics: list[StaticConfig] = []
    prefixes: set[str] = set()
    for index, table in enumerate(tables):
        if index == MAX_STATICS:
            raise table.fail(
                None,
                f"is one [[statics]] too many: an app has at most {MAX_STATICS}",
                hint="merge directories or serve the rest from the app",
            )
        table.check_keys(STATICS_KEYS, unsupported=_UNSUPPORTED)
        values: dict[str, str | None] = {}
        for key in ("guest_path", "url_prefix"):
            value = table.optional_string(key)
            if value is None:
                raise table.fail(
                    key, f"needs {key}", hint='e.g. guest_path = "/app/public", url_prefix = "/"'
                )
            values[key] = value
        values["index_document"] = table.optional_string("index_document")
        static = _model(table, values)
        if static.url_prefix in prefixes:
            raise table.error("url_prefix", f"{static.url_prefix!r} is already served")
        prefixes.add(static.url_prefix)
        statics.append(static)
    return statics


def _model(table: Table, values: dict[str, str | None]) -> StaticConfig:
    try:
        return StaticConfig.model_validate(values)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "guest_path"
        message = str(first["msg"]).removeprefix("Value error, ")
        error: ConfigError = table.fail(key, message)
        raise error from None
