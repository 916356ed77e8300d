"""An app's IP addresses (the Machines API's ``ip_assignments``), Flycast ones only.

Fly's Machines API lists, assigns and releases an app's addresses at
``/v1/apps/{app}/ip_assignments`` (``GET`` → ``{"ips": [...]}``, ``POST`` with
``{"type", "region", "org_slug", "network", "service_name"}``, ``DELETE
…/ip_assignments/{ip}``). Ferry takes the same shapes and assigns one type,
``private_v6`` (Flycast: an address of the app's organization's 6PN that goes
through the edge proxy); the public types are refused by name (every app is
served on the edges' shared address by its host name).

``FlycastFeed`` is what an edge reads: every Flycast address of every app.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "PRIVATE_V6",
    "AssignIPRequest",
    "FlycastFeed",
    "FlycastFeedEntry",
    "IPAssignment",
    "IPAssignmentList",
    "IPAssignmentNetwork",
]

PRIVATE_V6 = "private_v6"
"""The one assignment type Ferry makes: a Flycast address."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class AssignIPRequest(BaseModel):
    """The body of ``POST /v1/apps/{app}/ip_assignments`` (Fly's field names)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(max_length=40)
    region: str = Field(default="", max_length=100)
    org_slug: str = Field(default="", max_length=200)
    network: str = Field(default="", max_length=200)
    service_name: str = Field(default="", max_length=200)


class IPAssignmentNetwork(_Frozen):
    """The 6PN network a Flycast address belongs to; ``name`` is empty for the
    organization's default network (the only one Ferry has)."""

    name: str = ""
    org_slug: str


class IPAssignment(_Frozen):
    """One address of an app, as Fly's Machines API shows it."""

    ip: str
    type: str = PRIVATE_V6
    region: str = "global"
    service_name: str = ""
    shared: bool = False
    created_at: datetime
    network: IPAssignmentNetwork | None = None


class IPAssignmentList(_Frozen):
    ips: list[IPAssignment]


class FlycastFeedEntry(_Frozen):
    address: str
    app: str
    network: int
    org_slug: str


class FlycastFeed(_Frozen):
    """Every Flycast address the edges serve, at ``version`` (long-poll with ``since``)."""

    version: int
    addresses: list[FlycastFeedEntry]
