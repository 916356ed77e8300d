"""App secrets: sealing (AES-GCM), the control plane's key, names and the import format.

Pure apart from ``keys`` (which reads and writes the key file). Values leave this
package in plain text only through ``SecretsKey.open``, whose one caller hands them
to the host agent that starts the app's machines.
"""

from __future__ import annotations

from ferry.secrets.crypto import KEY_BYTES, SealedValue, SecretsKey, WrongKeyError
from ferry.secrets.names import (
    MAX_SECRETS_PER_APP,
    MAX_VALUE_BYTES,
    check_secret_name,
    check_secret_value,
    parse_assignments,
    parse_import,
)

__all__ = [
    "KEY_BYTES",
    "MAX_SECRETS_PER_APP",
    "MAX_VALUE_BYTES",
    "SealedValue",
    "SecretsKey",
    "WrongKeyError",
    "check_secret_name",
    "check_secret_value",
    "parse_assignments",
    "parse_import",
]
