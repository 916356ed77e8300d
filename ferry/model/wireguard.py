"""Developers' WireGuard peers on an organization's private network (``ferry wireguard``).

A peer is a laptop (or any machine outside Ferry) that joins one
organization's 6PN through one region's gateway, as Fly's ``fly wireguard
create`` makes. The peer makes its own key pair; the control plane keeps
only the public key. ``WireGuardPeer`` carries everything a ``wg-quick``
config needs except the private key: the peer's address and /120, the
organization's /48 (what the peer routes into the tunnel), the resolver the
peer asks for ``.internal`` names, and the gateway's public key and endpoint.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NewWireGuardPeer", "WireGuardPeer"]


class NewWireGuardPeer(BaseModel):
    """The body of ``POST /v1/orgs/{slug}/wireguard-peers``. ``region`` omitted: the
    first region (by name) whose gateway is up."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200)
    region: str | None = Field(default=None, max_length=100)
    public_key: str = Field(max_length=200)


class WireGuardPeer(BaseModel):
    """One peer as the API shows it (never a private key: the control plane has none)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    org_slug: str
    region: str
    public_key: str
    address: str  # the peer's own 6PN address, e.g. fdaa:0:1::1:0:2
    prefix: str  # the /120 the address is in (the wg-quick ``Address`` prefix length)
    org_prefix: str  # the organization's /48: the peer's AllowedIPs
    dns: str  # the organization's resolver address (``<org prefix>::3``)
    gateway_public_key: str
    gateway_endpoint: str  # ip:port of the region gateway's peer interface
    created_at: datetime
