"""The join-token part of the storage contract (``ferry.store.sqlite_join`` for SQLite)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ferry.model.join import JoinToken

__all__ = ["JoinTokenStore"]


class JoinTokenStore(Protocol):
    """Join tokens. Every method blocks and is thread-safe."""

    def insert_join_token(self, token: JoinToken, digest: str) -> None:
        """Keep a new token by the SHA-256 digest of its secret."""
        ...

    def get_join_token(self, token_id: str) -> tuple[JoinToken, str]:
        """The token and its digest; ``NotFoundError`` when unknown."""
        ...

    def spend_join_token(self, token_id: str, host_id: str, at: datetime) -> bool:
        """Mark the token used by ``host_id``; ``False`` when it already was (one winner)."""
        ...

    def list_join_tokens(self) -> list[JoinToken]:
        """Every token, newest first."""
        ...

    def delete_join_token(self, token_id: str) -> None:
        """Forget the token; ``NotFoundError`` when unknown."""
        ...
