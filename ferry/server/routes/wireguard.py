"""``/v1/orgs/{slug}/wireguard-peers``: developers' WireGuard peers (Fly keeps these in
its GraphQL API; Ferry serves plain JSON), and ``/v1/edges/{region}/wireguard-peers``,
what a region's gateway configures (see ``ferry.server.wireguard_service``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ferry.model.wireguard import NewWireGuardPeer, WireGuardPeer
from ferry.server.audit import note_audit
from ferry.server.auth import principal_of
from ferry.server.context import ControlPlane, json_response

__all__ = ["build_router"]


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(tags=["wireguard"])
    peers = plane.wireguard
    path = "/v1/orgs/{slug}/wireguard-peers"

    @router.post(path, status_code=201, responses={201: {"model": WireGuardPeer}})
    def create_peer(request: Request, slug: str, body: NewWireGuardPeer) -> JSONResponse:
        """A new peer of the organization (a member's token): send only its public key."""
        created = peers.create(principal_of(request), slug, body)
        note_audit(request, org=slug, peer=created.name, region=created.region)
        return json_response(created, 201)

    @router.get(path, responses={200: {"model": list[WireGuardPeer]}})
    def list_peers(request: Request, slug: str) -> JSONResponse:
        return json_response(peers.list_peers(principal_of(request), slug))

    @router.delete(path + "/{name}", responses={200: {"model": WireGuardPeer}})
    def remove_peer(request: Request, slug: str, name: str) -> JSONResponse:
        removed = peers.remove(principal_of(request), slug, name)
        note_audit(request, org=slug, peer=name)
        return json_response(removed)

    @router.get(
        "/v1/edges/{region}/wireguard-peers", responses={200: {"model": list[WireGuardPeer]}}
    )
    def gateway_peers(region: str) -> JSONResponse:
        """Every peer dialling ``region``'s gateway (that region's edge credential)."""
        return json_response(peers.for_gateway(region))

    return router
