"""WAF events (Ferry-only; docs/waf.md): the edges report them, app readers list them.

``POST /v1/edges/{region}/waf-events`` takes a batch from that region's edge
(its credential only: ``route_need`` says EDGE). Events of apps the store
does not know (deleted since the request) are skipped and counted in the
answer; the rest are stored with the region of the path.

``GET /v1/apps/{app_name}/waf/events?since=RFC3339&limit=N``: the app's
newest events, oldest first, for anyone who may read the app (another
organization's app is a 404, as everywhere).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ferry.errors import NotFoundError, ValidationError
from ferry.model.machine_waf import WafEvent
from ferry.server.context import ControlPlane, json_response
from ferry.server.query_params import allow_query

__all__ = ["WafEventBatch", "build_router"]

#: Events per report; an edge sends at most this many per call.
MAX_BATCH = 1000


class WafEventBatch(BaseModel):
    """The body of an edge's report."""

    model_config = ConfigDict(extra="forbid")

    events: list[WafEvent] = Field(max_length=MAX_BATCH)


class WafEventsStored(BaseModel):
    stored: int
    skipped: int


_SINCE = Query(default=None, description="only events at or after this time (RFC 3339)")
_LIMIT = Query(default=100, ge=1, le=10_000, description="at most this many (the newest)")


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(tags=["waf"])

    @router.post("/v1/edges/{region}/waf-events", responses={200: {"model": WafEventsStored}})
    def report_waf_events(region: str, body: WafEventBatch) -> JSONResponse:
        """Store an edge's WAF events (their ``region`` is the path's)."""
        known: dict[str, bool] = {}
        kept: list[WafEvent] = []
        for event in body.events:
            if event.app not in known:
                try:
                    plane.store.get_app(event.app)
                    known[event.app] = True
                except NotFoundError:
                    known[event.app] = False
            if known[event.app]:
                kept.append(event.model_copy(update={"region": region}))
        stored = plane.store.add_waf_events(kept)
        return json_response({"stored": stored, "skipped": len(body.events) - len(kept)})

    @router.get(
        "/v1/apps/{app_name}/waf/events",
        responses={200: {"model": list[WafEvent]}},
        dependencies=[Depends(allow_query("since", "limit"))],
    )
    def list_waf_events(
        app_name: str, since: str | None = _SINCE, limit: int = _LIMIT
    ) -> JSONResponse:
        """The app's newest ``limit`` WAF events at or after ``since``, oldest first."""
        plane.store.get_app(app_name)
        moment = _parse_since(since) if since else None
        return json_response(plane.store.list_waf_events(app_name, since=moment, limit=limit))

    return router


def _parse_since(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"since={value!r} is not a time",
            hint="give an RFC 3339 time such as 2026-12-03T10:00:00Z",
        ) from None
    if moment.tzinfo is None:
        raise ValidationError(
            f"since={value!r} has no time zone", hint="add Z or an offset such as +00:00"
        )
    return moment
