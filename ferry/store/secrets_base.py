"""The secrets part of the storage contract (``StateStore`` extends it).

Values arrive sealed (``StoredSecret``: AES-GCM ciphertext, nonce, key id and
a keyed digest); no column the store writes holds a value in plain text.
``ferry.store.sqlite_secrets`` implements it for SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Protocol

from ferry.model.secrets import SecretsVersions, StoredSecret

__all__ = ["SealedFields", "SecretsStore"]

#: (ciphertext, nonce, key id, digest) of one sealed value.
SealedFields = tuple[bytes, bytes, str, str]


class SecretsStore(Protocol):
    """Sealed app secrets. Every method blocks and is thread-safe."""

    def list_secrets(self, app_name: str) -> tuple[SecretsVersions, list[StoredSecret]]:
        """The app's versions and secrets sorted by name, read together (empty for an
        app without secrets, or an unknown one)."""
        ...

    def change_secrets(
        self,
        app_name: str,
        upserts: Mapping[str, SealedFields],
        removals: Collection[str],
        *,
        at: datetime,
    ) -> SecretsVersions:
        """Set ``upserts`` and remove ``removals`` in one transaction, bumping the app's
        version once. ``NotFoundError`` (nothing written) for an unknown app or a
        removal that names no stored secret."""
        ...

    def mark_secrets_deployed(self, app_name: str, version: int) -> SecretsVersions:
        """Record that the app's machines run with version ``version`` (never lowers it)."""
        ...

    def secret_key_ids(self) -> dict[str, int]:
        """How many stored values each key id sealed (empty: nothing is sealed)."""
        ...

    def reseal_secrets(self, reseal: Callable[[StoredSecret], SealedFields]) -> int:
        """Replace every stored value by ``reseal(row)`` in one transaction (key rotation);
        the number of values resealed. An exception from ``reseal`` changes nothing."""
        ...
