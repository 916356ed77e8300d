"""Hosts (one agent each), regions, apps and organizations."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class HostStatus(StrEnum):
    UP = "up"
    DOWN = "down"


class Host(_Frozen):
    """A host as the control plane knows it.

    ``address`` is where the host's machines are reached from the region
    network; ``machine_subnet`` (CIDR) is where the control plane allocates
    machine addresses for this host. ``sixpn_host`` is the host's 6PN number
    (``ferry.net.sixpn``: the ``host`` part of its machines' private addresses),
    given by the control plane at the host's first registration and kept when
    the same id registers again; 0 only before it is stored.
    """

    id: str
    region: str
    address: str
    cpus: int = Field(ge=1)
    memory_mb: int = Field(ge=64)
    machine_subnet: str
    status: HostStatus = HostStatus.UP
    last_heartbeat: datetime
    registered_at: datetime
    sixpn_host: int = Field(default=0, ge=0)


class Region(_Frozen):
    """A region code in Fly's shape (``GET /v1/platform/regions``)."""

    code: str
    name: str
    latitude: float = 0.0
    longitude: float = 0.0
    gateway_available: bool = True
    requires_paid_plan: bool = False


class Organization(_Frozen):
    """An organization; ``sixpn_network`` (Ferry-only) is its 6PN network number, the
    ``network`` part of every private address of its machines (``fdaa:<network>::/48``),
    given by the control plane when the organization is created; 0 only before that."""

    name: str
    slug: str
    sixpn_network: int = Field(default=0, ge=0)


class App(_Frozen):
    """An app in the Machines API shape."""

    id: str
    name: str
    organization: Organization
    status: str = "deployed"
    network: str = "default"
    machine_count: int = 0
    created_at: datetime


#: Fly's region codes Ferry knows by name; unknown codes are still usable.
REGION_NAMES: dict[str, str] = {
    "ams": "Amsterdam, Netherlands",
    "arn": "Stockholm, Sweden",
    "bom": "Mumbai, India",
    "cdg": "Paris, France",
    "dfw": "Dallas, Texas (US)",
    "ewr": "Secaucus, NJ (US)",
    "fra": "Frankfurt, Germany",
    "gru": "Sao Paulo, Brazil",
    "iad": "Ashburn, Virginia (US)",
    "jnb": "Johannesburg, South Africa",
    "lax": "Los Angeles, California (US)",
    "lhr": "London, United Kingdom",
    "nrt": "Tokyo, Japan",
    "ord": "Chicago, Illinois (US)",
    "sin": "Singapore, Singapore",
    "sjc": "San Jose, California (US)",
    "syd": "Sydney, Australia",
    "yyz": "Toronto, Canada",
}
