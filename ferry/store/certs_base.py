"""The certificates part of the storage contract (``StateStore`` extends it).

One row per host name (a name belongs to at most one app), with its ACME state:
the issued chain (public, plain), its private key sealed (``SealedFields``: the
store never holds a key in plain text), expiry, the pending challenges of an
order in flight (tokens and key authorizations: public by design), and the
failure bookkeeping the renewal decisions read. Plus the ACME account per
directory URL, its key sealed too. ``ferry.store.sqlite_certs`` implements it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ferry.store.secrets_base import SealedFields

__all__ = ["AcmeAccountRow", "CertRow", "CertStore", "CertUpdate"]


@dataclass(frozen=True)
class CertRow:
    """A stored certificate of ``app_name`` for ``hostname``.

    ``status``: ``pending`` (no certificate yet), ``issued``, ``failed`` (gave up).
    ``challenges``: the challenges of the order in flight, JSON-ready
    (``{"http01": {token: keyauth}, "dns01": {name: [values]}, "alpn01": {host: keyauth}}``).
    ``version``: bumped by every write, so edges see every change.
    """

    app_name: str
    hostname: str
    status: str
    created_at: datetime
    updated_at: datetime
    chain_pem: bytes = b""
    key: SealedFields | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    last_error: str = ""
    failures: int = 0
    next_attempt: datetime | None = None
    challenges: Mapping[str, Any] = field(default_factory=dict)
    version: int = 0

    def __repr__(self) -> str:  # the sealed key stays out of logs, sealed or not
        return (
            f"CertRow({self.app_name}/{self.hostname}, {self.status}, not_after={self.not_after})"
        )


@dataclass(frozen=True)
class CertUpdate:
    """Fields to change on one certificate row (``None``: leave as is)."""

    status: str | None = None
    chain_pem: bytes | None = None
    key: SealedFields | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    last_error: str | None = None
    failures: int | None = None
    next_attempt: datetime | None = None
    clear_next_attempt: bool = False
    challenges: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class AcmeAccountRow:
    """The ACME account at ``directory_url``: its sealed JWK and its URI."""

    directory_url: str
    key: SealedFields
    uri: str
    created_at: datetime


class CertStore(Protocol):
    """Certificates and the ACME account. Every method blocks and is thread-safe."""

    def add_certificate(self, app_name: str, hostname: str, *, at: datetime) -> CertRow:
        """Insert a ``pending`` row. ``ConflictError`` when the host name is taken (by
        any app), ``NotFoundError`` for an unknown app; nothing written then."""
        ...

    def get_certificate(self, hostname: str) -> CertRow:
        """The row for ``hostname``; ``NotFoundError`` when there is none."""
        ...

    def list_certificates(self, app_name: str | None = None) -> list[CertRow]:
        """Rows sorted by host name, of one app or of all."""
        ...

    def update_certificate(self, hostname: str, change: CertUpdate, *, at: datetime) -> CertRow:
        """Apply ``change`` and bump the row's version; ``NotFoundError`` if gone."""
        ...

    def remove_certificate(self, app_name: str, hostname: str) -> None:
        """Delete the app's row for ``hostname``; ``NotFoundError`` when there is none."""
        ...

    def certificates_version(self) -> int:
        """A number that grows with every certificate write (edges long-poll on it)."""
        ...

    def cert_key_ids(self) -> dict[str, int]:
        """How many sealed certificate and account keys each key id sealed."""
        ...

    def reseal_cert_keys(self, reseal: Callable[[str, str, SealedFields], SealedFields]) -> int:
        """Replace every sealed key by ``reseal(scope, name, sealed)`` in one transaction."""
        ...

    def get_acme_account(self, directory_url: str) -> AcmeAccountRow | None:
        """The account registered at ``directory_url``, if any."""
        ...

    def save_acme_account(self, account: AcmeAccountRow) -> None:
        """Insert or replace the account of ``account.directory_url``."""
        ...
