"""``/v1/orgs``, ``/v1/tokens`` and ``/v1/invitations`` (Ferry): who may do what.

Fly keeps these in its GraphQL API; Ferry serves them as plain JSON routes.
Every answer leaves secrets out, except the one response that creates them
(a token's or an invitation's ``plain`` value, shown once).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ferry.model import Organization
from ferry.model.access import Invitation, Member, Role, TokenInfo, TokenKind
from ferry.server.access_service import AccessService, NewToken
from ferry.server.audit import note_audit
from ferry.server.auth import principal_of
from ferry.server.context import json_response
from ferry.server.openapi import (
    AcceptedInvitation,
    CreatedInvitation,
    CreatedOrg,
    CreatedToken,
    Ok,
    OrgShown,
)

__all__ = ["build_public_router", "build_router"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateOrgRequest(_Body):
    slug: str
    name: str | None = None
    admin_email: str | None = None


class InviteRequest(_Body):
    email: str
    role: Role = Role.MEMBER


class SetRoleRequest(_Body):
    role: Role


class AcceptRequest(_Body):
    invitation: str = Field(max_length=200)
    token_name: str | None = Field(default=None, max_length=100)


class CreateTokenRequest(_Body):
    kind: TokenKind
    name: str = Field(default="", max_length=100)
    org_slug: str | None = None
    app_name: str | None = None
    host_id: str | None = None
    region: str | None = None
    expiry: str | None = None


def _created(token: NewToken) -> dict[str, object]:
    return {"token": token.plain, **token.info.model_dump(mode="json")}


def build_router(access: AccessService) -> APIRouter:
    router = APIRouter(tags=["access"])

    @router.get("/v1/orgs", responses={200: {"model": list[Organization]}})
    def list_orgs(request: Request) -> JSONResponse:
        return json_response(access.list_orgs(principal_of(request)))

    @router.post("/v1/orgs", status_code=201, responses={201: {"model": CreatedOrg}})
    def create_org(request: Request, body: CreateOrgRequest) -> JSONResponse:
        """With ``admin_email`` (the operator's way), the answer carries that admin's
        invitation: accepting it gives them their user token."""
        p = principal_of(request)
        org = access.create_org(p, body.slug, body.name or body.slug, body.admin_email)
        note_audit(request, org=org.slug, slug=org.slug)
        answer = org.model_dump(mode="json")
        if p.is_operator and body.admin_email is not None:
            invitation, plain = access.invite(p, org.slug, body.admin_email, Role.ADMIN)
            answer["admin_invitation"] = {"invitation": plain, **invitation.model_dump(mode="json")}
        return json_response(answer, 201)

    @router.get("/v1/orgs/{slug}", responses={200: {"model": OrgShown}})
    def show_org(request: Request, slug: str) -> JSONResponse:
        details = access.show_org(principal_of(request), slug)
        return json_response(
            {
                **details.org.model_dump(mode="json"),
                "members": details.members,
                "apps": details.apps,
            }
        )

    @router.delete("/v1/orgs/{slug}", responses={200: {"model": Ok}})
    def destroy_org(request: Request, slug: str) -> JSONResponse:
        access.destroy_org(principal_of(request), slug)
        return json_response({"ok": True})

    @router.get("/v1/orgs/{slug}/members", responses={200: {"model": list[Member]}})
    def list_members(request: Request, slug: str) -> JSONResponse:
        return json_response(access.list_members(principal_of(request), slug))

    @router.put("/v1/orgs/{slug}/members/{email}", responses={200: {"model": Member}})
    def set_role(request: Request, slug: str, email: str, body: SetRoleRequest) -> JSONResponse:
        return json_response(access.set_role(principal_of(request), slug, email, body.role))

    @router.delete("/v1/orgs/{slug}/members/{email}", responses={200: {"model": Ok}})
    def remove_member(request: Request, slug: str, email: str) -> JSONResponse:
        access.remove_member(principal_of(request), slug, email)
        return json_response({"ok": True})

    @router.get("/v1/orgs/{slug}/invitations", responses={200: {"model": list[Invitation]}})
    def list_invitations(request: Request, slug: str) -> JSONResponse:
        return json_response(access.list_invitations(principal_of(request), slug))

    @router.post(
        "/v1/orgs/{slug}/invitations",
        status_code=201,
        responses={201: {"model": CreatedInvitation}},
    )
    def invite(request: Request, slug: str, body: InviteRequest) -> JSONResponse:
        invitation, plain = access.invite(principal_of(request), slug, body.email, body.role)
        return json_response({"invitation": plain, **invitation.model_dump(mode="json")}, 201)

    @router.get("/v1/tokens", responses={200: {"model": list[TokenInfo]}})
    def list_tokens(request: Request, org_slug: str | None = None) -> JSONResponse:
        return json_response(access.list_tokens(principal_of(request), org_slug or None))

    @router.post("/v1/tokens", status_code=201, responses={201: {"model": CreatedToken}})
    def create_token(request: Request, body: CreateTokenRequest) -> JSONResponse:
        if body.org_slug:
            note_audit(request, org=body.org_slug)
        token = access.create_token(
            principal_of(request),
            body.kind,
            name=body.name,
            org_slug=body.org_slug,
            app_name=body.app_name,
            host_id=body.host_id,
            region=body.region,
            expiry=body.expiry,
        )
        info = token.info
        note_audit(
            request, org=info.org_slug, token_id=info.id, kind=info.kind.value, name=info.name
        )
        return json_response(_created(token), 201)

    @router.delete("/v1/tokens/{token_id}", responses={200: {"model": TokenInfo}})
    def revoke_token(request: Request, token_id: str) -> JSONResponse:
        revoked = access.revoke_token(principal_of(request), token_id)
        note_audit(request, org=revoked.org_slug, name=revoked.name)
        return json_response(revoked)

    return router


def build_public_router(access: AccessService) -> APIRouter:
    """The one route without a token: an invitation is its own credential."""
    router = APIRouter(tags=["access"])

    @router.post(
        "/v1/invitations/accept", status_code=201, responses={201: {"model": AcceptedInvitation}}
    )
    def accept_invitation(request: Request, body: AcceptRequest) -> JSONResponse:
        invitation, token = access.accept(body.invitation, body.token_name)
        note_audit(
            request,
            org=invitation.org_slug,
            actor=f"invitation {invitation.id} ({invitation.email})",
            token_id=token.info.id,
        )
        return json_response(
            {"membership": invitation.model_dump(mode="json"), **_created(token)}, 201
        )

    return router
