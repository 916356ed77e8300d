"""Developers' WireGuard peers (``ferry wireguard``) and what a region's gateway reads."""

from __future__ import annotations

from ferry.client._http import HttpCore
from ferry.client._parse import parse_model, parse_models
from ferry.client._parse import path_segment as _seg
from ferry.model.wireguard import WireGuardPeer


class WireGuardMethods(HttpCore):
    """WireGuard peer endpoints. Every method blocks; errors as in ``HttpCore``."""

    def create_wireguard_peer(
        self, org_slug: str, name: str, public_key: str, region: str | None = None
    ) -> WireGuardPeer:
        """Add a peer to the organization; only its PUBLIC key is sent."""
        body = {"name": name, "region": region, "public_key": public_key}
        data = self._request("POST", f"/v1/orgs/{_seg(org_slug)}/wireguard-peers", body=body)
        return parse_model(WireGuardPeer, data)

    def list_wireguard_peers(self, org_slug: str) -> list[WireGuardPeer]:
        """The organization's peers, by name."""
        data = self._request("GET", f"/v1/orgs/{_seg(org_slug)}/wireguard-peers")
        return parse_models(WireGuardPeer, data)

    def remove_wireguard_peer(self, org_slug: str, name: str) -> WireGuardPeer:
        """Remove a peer; its gateway drops it on its next cycle."""
        path = f"/v1/orgs/{_seg(org_slug)}/wireguard-peers/{_seg(name)}"
        return parse_model(WireGuardPeer, self._request("DELETE", path))

    def gateway_wireguard_peers(self, region: str) -> list[WireGuardPeer]:
        """(Edges) Every peer that dials ``region``'s gateway."""
        data = self._request("GET", f"/v1/edges/{_seg(region)}/wireguard-peers")
        return parse_models(WireGuardPeer, data)
