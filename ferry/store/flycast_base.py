"""The Flycast part of the storage contract (``ferry.store.sqlite_flycast``).

One row per Flycast address: the app it belongs to, the organization and 6PN
network it was made in, and its number in that network's Flycast /80
(``ferry.net.flycast.flycast_address``; unique per network). Adding or
removing one bumps the mesh counter (``MeshStore.mesh_version``): hosts route
each organization's Flycast /80 to their region's edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["FlycastRecord", "FlycastStore"]


@dataclass(frozen=True)
class FlycastRecord:
    address: str
    app_name: str
    org_slug: str
    network: int
    number: int
    created_at: datetime


class FlycastStore(Protocol):
    """Flycast addresses. Every method blocks and is thread-safe."""

    def add_flycast_ip(
        self, app_name: str, org_slug: str, network: int, *, now: datetime
    ) -> FlycastRecord:
        """Give ``app_name`` the lowest Flycast number free in ``network``.
        ``ValidationError`` when the network has none left; nothing changes then."""
        ...

    def list_flycast_ips(self, app_name: str | None = None) -> list[FlycastRecord]:
        """Addresses (of one app, or all) by network, number."""
        ...

    def remove_flycast_ip(self, app_name: str, address: str) -> FlycastRecord:
        """Release and return the app's address; ``NotFoundError`` when it has no such one."""
        ...
