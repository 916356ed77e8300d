"""``/v1/…/mesh``: hosts and edges announce their WireGuard key and read the others'
(Ferry-only; see ``ferry.server.mesh_service``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from ferry.errors import ForbiddenError
from ferry.model.access import TokenKind
from ferry.model.mesh import EdgeFastPlan, MeshAnnouncement, MeshNode, MeshSnapshot
from ferry.server.auth import principal_of
from ferry.server.context import ControlPlane, json_response
from ferry.server.feeds import Feed, FeedState, KeyedFeeds, Memo, NotifiedVersion
from ferry.server.internal_feed import RecordsView, read_feed

__all__ = ["VERSION_HEADER", "build_router"]

VERSION_HEADER = "Ferry-Version"

T = TypeVar("T")


_RECORDS = {
    "description": "The host's .internal records (ferry.net.internal_records' JSON)",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["version", "machines", "apps", "peers", "rtt_ms"],
                "properties": {
                    "version": {"type": "integer"},
                    "machines": {"type": "array", "items": {"type": "object"}},
                    "apps": {"type": "object"},
                    "peers": {"type": "object"},
                    "rtt_ms": {"type": "object"},
                },
            }
        }
    },
}


def records_response(records_json: str, version: int) -> Response:
    """Records as their own JSON, the version in ``Ferry-Version``."""
    return Response(
        records_json, media_type="application/json", headers={VERSION_HEADER: str(version)}
    )


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(tags=["mesh"])
    mesh = plane.mesh
    # Every machine write wakes all these polls: each feed is computed once per
    # version for all of them, and answers only when its own content moved.
    version = NotifiedVersion(mesh.version, plane.notifier.version)
    reads = Memo(version, lambda _version: read_feed(plane.store))
    mesh_feed: Feed[MeshSnapshot] = Feed(
        version, mesh.snapshot, fingerprint=lambda snap: (snap.nodes, snap.flycast, snap.fast)
    )

    def host_view(host_id: str) -> RecordsView:
        shared = reads.current()[1]
        return RecordsView(shared, shared.host_networks.get(host_id, frozenset()))

    def gateway_view(region: str) -> RecordsView:
        shared = reads.current()[1]
        return RecordsView(shared, shared.gateway_networks.get(region, frozenset()))

    host_feeds = KeyedFeeds(version, host_view, RecordsView.fingerprint)
    gateway_feeds = KeyedFeeds(version, gateway_view, RecordsView.fingerprint)

    async def long_poll(
        current: Callable[[], FeedState[T]], since: int, timeout: float
    ) -> FeedState[T]:
        """The feed once its version differs from ``since``, or at once when ``since``
        is 0, or when ``timeout`` passes: the long poll."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            seen = plane.notifier.version(None)
            state = await asyncio.to_thread(current)
            remaining = deadline - loop.time()
            if since == 0 or state.version != since or remaining <= 0:
                return state
            await plane.notifier.wait(None, seen, remaining)

    @router.put("/v1/hosts/{host_id}/mesh", responses={200: {"model": MeshNode}})
    def announce_host(host_id: str, body: MeshAnnouncement) -> JSONResponse:
        """The host's public key and WireGuard endpoint (its credential only)."""
        return json_response(mesh.announce_host(host_id, body))

    @router.put("/v1/edges/{region}/mesh", responses={200: {"model": MeshNode}})
    def announce_edge(region: str, body: MeshAnnouncement) -> JSONResponse:
        """The region edge's public key and WireGuard endpoint (that edge's credential)."""
        return json_response(mesh.announce_edge(region, body))

    @router.put("/v1/edges/{region}/flycast-fast", responses={200: {"model": EdgeFastPlan}})
    def publish_fast(region: str, body: EdgeFastPlan) -> JSONResponse:
        """The raw TCP Flycast ports the region edge forwards in its kernel now (that
        edge's credential); the hosts of the region read it in ``/v1/mesh``."""
        return json_response(mesh.publish_fast(region, body))

    @router.get("/v1/mesh", responses={200: {"model": MeshSnapshot}})
    async def watch_mesh(
        request: Request,
        since: int = Query(0, ge=0),
        timeout: float = Query(30.0, ge=0, le=60),
    ) -> JSONResponse:
        """Every node of the mesh; long-polls like ``/v1/routes`` (answers at once when
        ``since`` is 0 or stale, else when the nodes or what they carry change, or
        ``timeout`` passes). For hosts, edges and the operator: a user's token gets 403."""
        p = principal_of(request)
        if not p.is_operator and p.kind not in (TokenKind.HOST, TokenKind.EDGE):
            raise ForbiddenError(
                f"{p.describe()} may not read the mesh: it is for hosts and edges",
                hint="hosts and edges use the credential the cluster gave them",
            )
        state = await long_poll(mesh_feed.current, since, timeout)
        snap = state.value
        return json_response(
            MeshSnapshot(
                version=state.version, nodes=snap.nodes, flycast=snap.flycast, fast=snap.fast
            )
        )

    @router.get("/v1/hosts/{host_id}/internal", responses={200: _RECORDS})
    async def watch_internal_records(
        host_id: str,
        since: int = Query(0, ge=0),
        timeout: float = Query(30.0, ge=0, le=60),
    ) -> Response:
        """The records the host's ``.internal`` resolver answers from (the JSON of
        ``ferry.net.internal_records``), for the organizations with machines on the
        host, their WireGuard peers included; long-polls until they change, like the
        host watch. The version comes back in the ``Ferry-Version`` header."""
        plane.store.get_host(host_id)
        state = await long_poll(partial(host_feeds.current, host_id), since, timeout)
        return records_response(state.value.to_json(plane.machines.distances), state.version)

    @router.get("/v1/edges/{region}/internal", responses={200: _RECORDS})
    async def watch_gateway_records(
        region: str,
        since: int = Query(0, ge=0),
        timeout: float = Query(30.0, ge=0, le=60),
    ) -> Response:
        """What the region gateway's resolver answers its WireGuard peers from: the
        records of the organizations with peers at that gateway (as the hosts' feed)."""
        state = await long_poll(partial(gateway_feeds.current, region), since, timeout)
        return records_response(state.value.to_json(plane.machines.distances), state.version)

    return router
