"""The ``[postgres]`` part of the storage contract (``ferry.store.sqlite_pg_follow``).

One ``FollowPolicy`` per app: the Postgres cluster the app uses and whether that
cluster's replicas follow the app's regions. Removed with the app.
"""

from __future__ import annotations

from typing import Protocol

from ferry.model.postgres_follow import FollowPolicy

__all__ = ["FollowPolicyStore"]


class FollowPolicyStore(Protocol):
    """Follow policies. Every method blocks and is thread-safe."""

    def set_follow_policy(self, app_name: str, policy: FollowPolicy) -> None:
        """Store (replace) the app's policy. Idempotent. ``NotFoundError`` for no such app."""
        ...

    def get_follow_policy(self, app_name: str) -> FollowPolicy | None:
        """The app's policy, or ``None`` when it has none."""
        ...

    def delete_follow_policy(self, app_name: str) -> bool:
        """Remove the app's policy; ``True`` if there was one. Idempotent."""
        ...

    def list_follow_policies(self) -> dict[str, FollowPolicy]:
        """Every stored policy by app name, in name order."""
        ...
