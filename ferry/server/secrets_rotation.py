"""Rotate the control plane's secrets key: re-encrypt every stored value in one transaction.

Offline: it takes the state directory's server lock, so it refuses to run while
a control plane serves from it (that one would keep the old key in memory).
Crash-safe in this order: the new key goes to ``secrets.key.new`` (0600), the
values are re-encrypted and committed in one transaction, then the new key
replaces ``secrets.key``. A crash before the commit leaves everything on the
old key; one after it is finished by the next ``ferry server`` start
(``open_secrets_key`` finds ``secrets.key.new`` matching the stored values).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ferry.errors import ConfigError, ValidationError
from ferry.secrets import SecretsKey
from ferry.secrets.keys import (
    KEY_ENV,
    hold_server_lock,
    open_secrets_key,
    pending_path,
    read_key_file,
    write_key_file,
)
from ferry.server.certs_service import reseal_certificate_keys, sealed_key_ids
from ferry.server.clock import SystemClock
from ferry.server.secrets_service import SecretsService
from ferry.store import open_store

__all__ = ["Rotation", "rotate_secrets_key"]


@dataclass(frozen=True)
class Rotation:
    """What a rotation did: how many values, from which key id to which, where the key is."""

    resealed: int
    old_key_id: str
    new_key_id: str
    key_location: str


def rotate_secrets_key(
    home: Path,
    *,
    store_url: str | None = None,
    new_key_file: Path | None = None,
    environ: dict[str, str] | None = None,
) -> Rotation:
    """Re-encrypt every app secret under a new key. Blocking.

    The new key is the one in ``new_key_file`` when that file exists, else a
    new random key (written to ``new_key_file`` when given). When the current
    key comes from a file, that file is replaced by the new key; when it comes
    from ``$FERRY_SECRETS_KEY``, ``new_key_file`` is required and the operator
    sets the variable from it. Raises ``ConfigError`` for a missing or wrong
    current key, ``UnavailableError`` while a control plane runs on ``home``.
    """
    env = dict(os.environ if environ is None else environ)
    server_dir = home.expanduser().resolve() / "server"
    url = store_url or f"sqlite:///{server_dir / 'state.db'}"
    with hold_server_lock(server_dir):
        store = open_store(url)
        try:
            current = open_secrets_key(server_dir, sealed_key_ids(store), env)
            if current.path is None and new_key_file is None:
                raise ConfigError(
                    f"the current key comes from ${KEY_ENV}: give --new-key-file PATH "
                    "to receive the new key",
                    hint=f"then set ${KEY_ENV} to the contents of that file",
                )
            if new_key_file is not None and new_key_file.exists():
                new_key = read_key_file(new_key_file)
            else:
                new_key = SecretsKey.generate()
                if new_key_file is not None:
                    write_key_file(new_key_file, new_key)
            if new_key.id == current.key.id:
                raise ValidationError(
                    f"the new key is the current key ({new_key.id})",
                    hint="give a file with another key, or none to have one generated",
                )
            if current.path is not None:
                write_key_file(pending_path(current.path), new_key)
            count = SecretsService(store, SystemClock(), current.key).reseal(new_key)
            count += reseal_certificate_keys(store, current.key, new_key)
            if current.path is not None:
                os.replace(pending_path(current.path), current.path)
            location = str(current.path) if current.path is not None else f"${KEY_ENV}"
            return Rotation(count, current.key.id, new_key.id, location)
        finally:
            store.close()
