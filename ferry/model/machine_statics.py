"""``config.statics[]`` (fly.toml ``[[statics]]``): files of the image the edge serves itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import field_validator

from ferry.model.refusals import FlyConfigModel

__all__ = ["MAX_STATICS", "StaticConfig"]

#: Fly allows at most this many ``[[statics]]`` per app.
MAX_STATICS = 10


class StaticConfig(FlyConfigModel):
    """One ``config.statics[]`` entry, in Fly's shape.

    A GET or HEAD whose path starts with ``url_prefix`` is answered by the edge
    from the image's files under ``guest_path``; a path with no such file goes
    on to the app, as on Fly. ``index_document`` (a file name) answers a
    directory path. ``tigris_bucket`` (Fly's object storage) is refused: Ferry
    has none.
    """

    guest_path: str
    url_prefix: str
    index_document: str | None = None

    refused_fields: ClassVar[Mapping[str, str]] = {
        "tigris_bucket": "Ferry has no object storage; put the files in the image and set "
        "guest_path"
    }

    @field_validator("guest_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/") or "\x00" in value:
            raise ValueError(f"guest_path must be an absolute path without '..', got {value!r}")
        return value

    @field_validator("url_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/") or any(c in value for c in "?#\x00 "):
            raise ValueError(f"url_prefix must be a URL path starting with '/', got {value!r}")
        return value

    @field_validator("index_document")
    @classmethod
    def _file_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or value in (".", "..")):
            raise ValueError(f"index_document must be a file name, got {value!r}")
        return value
