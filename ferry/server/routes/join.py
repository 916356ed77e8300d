"""``/v1/hosts/join-tokens`` (the operator's) and ``/v1/hosts/join`` (a new server's,
with a join token as its credential). See ``ferry.server.join_service``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ferry.model import Host
from ferry.model.join import JoinToken
from ferry.server.audit import note_audit
from ferry.server.context import ControlPlane, json_response
from ferry.server.join_service import JoinService
from ferry.server.openapi import error_responses
from ferry.server.schemas import RegisterHostRequest

__all__ = ["build_public_router", "build_router"]


class CreateJoinTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    region: str | None = None
    expiry: str | None = Field(default=None, description="e.g. 30m, 1h, 24h (default 1h)")


class CreatedJoinToken(JoinToken):
    token: str = Field(description="shown once: give it to `ferry host join --token`")


class JoinRequest(RegisterHostRequest):
    token: str = Field(min_length=1, description="a join token from `ferry host token create`")


class JoinedHost(BaseModel):
    host: Host
    credential: str = Field(description="the host's own API credential, shown once")


def build_router(plane: ControlPlane) -> APIRouter:
    """The operator's routes (the admin token only: ``ferry.server.authz``)."""
    router = APIRouter(tags=["hosts"])
    joins = plane.joins

    @router.post(
        "/v1/hosts/join-tokens", status_code=201, responses={201: {"model": CreatedJoinToken}}
    )
    def create_join_token(body: CreateJoinTokenRequest) -> JSONResponse:
        made = joins.create(name=body.name, region=body.region, expiry=body.expiry)
        shown = {**made.info.model_dump(mode="json"), "token": made.plain}
        return json_response(shown, 201)

    @router.get("/v1/hosts/join-tokens", responses={200: {"model": list[JoinToken]}})
    def list_join_tokens() -> JSONResponse:
        return json_response(joins.list())

    @router.delete("/v1/hosts/join-tokens/{token_id}", status_code=204)
    def revoke_join_token(token_id: str) -> None:
        joins.revoke(token_id)

    return router


def build_public_router(joins: JoinService) -> APIRouter:
    """``POST /v1/hosts/join``: no API token; the join token in the body is the credential."""
    router = APIRouter(tags=["hosts"])

    @router.post(
        "/v1/hosts/join",
        status_code=201,
        responses={201: {"model": JoinedHost}, **error_responses(403)},
    )
    def join(request: Request, body: JoinRequest) -> JSONResponse:
        registration = RegisterHostRequest.model_validate(body.model_dump(exclude={"token"}))
        joined = joins.join(body.token, registration)
        note_audit(request, actor=f"join token ({joined.host.id})", host_id=joined.host.id)
        return json_response({"host": joined.host, "credential": joined.credential}, 201)

    return router
