"""The WireGuard mesh as the control plane knows it: who is on it, with which key.

Hosts and edges make their own key pairs and announce only the public half
and the UDP endpoint other nodes reach them at (``MeshAnnouncement``); the
control plane gives every node the list of the others (``MeshSnapshot``) with
the 6PN prefixes each one carries (``allowed_ips``). Private keys never leave
the node that made them.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["MeshAnnouncement", "MeshNode", "MeshNodeKind", "MeshSnapshot"]

WIREGUARD_KEY_BYTES = 32


class MeshNodeKind(StrEnum):
    HOST = "host"  # carries its machines' /112s
    EDGE = "edge"  # a region's edge proxy: reaches machines, carries only itself


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MeshAnnouncement(_Frozen):
    """What a node tells the control plane about itself (``PUT …/mesh``)."""

    public_key: str
    endpoint: str

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != WIREGUARD_KEY_BYTES:
            raise ValueError(
                "public_key must be a WireGuard public key: 32 bytes in base64 "
                "(the output of `wg pubkey`), never the private key"
            )
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return normalize_endpoint(value)


def normalize_endpoint(value: str) -> str:
    """``ip:port`` (or ``[ipv6]:port``) as WireGuard wants it; ``ValueError`` says why not."""
    host, sep, port_text = value.rpartition(":")
    hint = (
        "give the address other hosts reach this one at, as 192.0.2.7:51820 or [2001:db8::7]:51820"
    )
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"endpoint {value!r} needs a port from 1 to 65535: {hint}")
    try:
        ip = ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        raise ValueError(f"endpoint {value!r} is not an IP address and port: {hint}") from None
    if ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"endpoint {value!r} is not an address a peer can send to: {hint}")
    shown = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{shown}:{int(port_text)}"


class MeshNode(_Frozen):
    """One node of the mesh, as every other node sees it."""

    id: str  # the host's id, or ``edge-<region>``
    kind: MeshNodeKind
    region: str
    public_key: str
    endpoint: str
    address: str  # the node's own 6PN address (network 0)
    allowed_ips: list[str]  # CIDRs the node carries: its address, its machines' /112s
    updated_at: datetime


class MeshSnapshot(_Frozen):
    """Every node, and the version to long-poll from (``GET /v1/mesh?since=``)."""

    version: int
    nodes: list[MeshNode]
