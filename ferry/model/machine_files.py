"""``config.files[]``: files written into a machine's filesystem before its process starts."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, field_validator

from ferry.model.refusals import FlyConfigModel

__all__ = ["MAX_FILES", "MAX_FILE_BYTES", "MachineFile"]

#: Largest decoded ``config.files[].raw_value`` (Ferry's limit: files are small config).
MAX_FILE_BYTES = 1024 * 1024
#: Most ``config.files`` entries per machine.
MAX_FILES = 64


class MachineFile(FlyConfigModel):
    """A file written into the machine's filesystem before its process starts (``config.files[]``).

    ``raw_value`` is the content, base64-encoded, as in Fly's API.
    ``secret_name`` is refused until secrets exist.
    """

    guest_path: str = Field(min_length=2, max_length=4096)
    raw_value: str

    refused_fields: ClassVar[Mapping[str, str]] = {
        "secret_name": "files made from secrets are not built yet; use raw_value"
    }

    @field_validator("guest_path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        parts = path.split("/")
        if not path.startswith("/") or path.endswith("/") or ".." in parts or "\0" in path:
            raise ValueError(f"guest_path must be an absolute file path without '..', got {path!r}")
        return path

    @field_validator("raw_value")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            content = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("raw_value must be base64-encoded content") from None
        if len(content) > MAX_FILE_BYTES:
            raise ValueError(f"raw_value decodes to more than {MAX_FILE_BYTES} bytes")
        return value

    @property
    def content(self) -> bytes:
        return base64.b64decode(self.raw_value)
