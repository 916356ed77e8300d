"""What ``GET /openapi.json`` declares: every answer's body, errors included.

Routes answer ``JSONResponse`` (to keep Fly's exact JSON), so FastAPI cannot
see their bodies: each declares its success body with ``responses={200:
{"model": X}}``, using the shapes below where no domain model fits. Errors
are declared here, in one place: every route served with a token may answer
400 (a bad field), 401, 403, 404, 429 (rate limit) and 503 (the store
failed); ``install_openapi`` adds 409/412/422/408 to the routes that can
raise them, and removes FastAPI's default 422 (``HTTPValidationError``),
which Ferry never sends: a request that fails validation is a 400 with the
``ErrorBody`` every failure uses (``ferry.server.errors``).

``tests/unit/server/test_openapi_complete.py`` checks that every operation
declares a success body and its errors; ``tests/unit/server/test_api_fuzz.py``
checks that the server keeps to this document under a fuzzer.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict

from ferry.model import App, Host, Machine, Organization, Region
from ferry.model.access import Invitation, Member, TokenInfo
from ferry.model.autoscale import AutoscalePolicy
from ferry.model.lease import MachineLease
from ferry.model.machine import DesiredState, MachineState

__all__ = [
    "AUTHORIZED_ERRORS",
    "PUBLIC_ERRORS",
    "ErrorBody",
    "error_responses",
    "install_openapi",
]

_REASONS = {
    400: "invalid request: the error names the field",
    401: "no token, or not a valid one",
    403: "the token may read but not do this",
    404: "not found (or another organization's)",
    408: "timed out waiting",
    409: "conflicts with the current state",
    412: "the lease nonce matches no live lease",
    422: "no host has capacity for it",
    429: "rate limited: see Retry-After",
    503: "the state store is unavailable",
}


class ErrorBody(BaseModel):
    """Every failure's body: what went wrong and what to do about it."""

    error: str
    hint: str | None


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries declaring ``ErrorBody`` for each of ``statuses``."""
    return {s: {"model": ErrorBody, "description": _REASONS[s]} for s in statuses}


#: The errors of every route that needs a token.
AUTHORIZED_ERRORS = error_responses(400, 401, 403, 404, 429, 503)
#: The errors of the routes without a token (``/healthz``, accepting an invitation).
PUBLIC_ERRORS = error_responses(400, 401, 404, 409, 503)

_MACHINE = r"/v1/apps/\{app_name\}/machines/\{machine_id\}"
_LEASED = rf"{_MACHINE}(/(start|stop|suspend|restart|signal|cordon|uncordon|lease))?"
#: (method regex, path regex) -> the extra statuses that operation can answer.
_EXTRA: list[tuple[str, str, tuple[int, ...]]] = [
    ("post|put|patch|delete", r"/v1/.*", (409,)),
    ("post|delete", _LEASED, (412,)),
    ("post", rf"/v1/apps/\{{app_name\}}/machines|{_MACHINE}(/(start|restart))?", (422,)),
    ("get", rf"{_MACHINE}/wait", (408, 409)),
    ("get", rf"{_MACHINE}/ps", (409,)),  # a machine that is not started has no processes
]


def _extra_statuses(method: str, path: str) -> list[int]:
    found: list[int] = []
    for methods, pattern, statuses in _EXTRA:
        if re.fullmatch(methods, method) and re.fullmatch(pattern, path):
            found.extend(statuses)
    return found


def _complete(doc: dict[str, Any]) -> dict[str, Any]:
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            default_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
            if default_422.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            for status in _extra_statuses(method, path):
                responses[str(status)] = {
                    "description": _REASONS[status],
                    "content": {"application/json": {"schema": error_ref}},
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return doc


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) the completed document, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _complete(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# -- the bodies of answers that no domain model describes -----------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Ok(_Answer):
    ok: bool


class AppDeleted(Ok):
    status: str


class AppList(_Answer):
    total_apps: int
    apps: list[App]


class MachineSummary(_Answer):
    """A machine as ``?summary=true`` lists it: without its config, checks and events."""

    id: str
    name: str
    app_name: str
    state: MachineState
    desired_state: DesiredState
    region: str
    instance_id: str
    private_ip: str
    host_ip: str
    host_id: str
    created_at: datetime
    updated_at: datetime


class PreviousState(_Answer):
    previous_state: str


class WaitResult(Ok):
    state: str


class LogLines(_Answer):
    lines: list[str]


class LeaseEnvelope(_Answer):
    """fly-go's ``MachineLease``: ``{"status": "success", "data": {...}}``."""

    status: str
    data: MachineLease


class LeaseReleased(_Answer):
    status: str


class MachinesWatch(_Answer):
    """A host's desired state, or every routable machine (``/v1/routes``)."""

    resource_version: int
    machines: list[Machine]


class RegionList(_Answer):
    Regions: list[Region]
    Nearest: str | None


class PlatformInfo(_Answer):
    version: str
    registry: str
    regions: list[Region]
    hosts: list[Host]


class AppTraffic(_Answer):
    app: str
    edges: dict[str, dict[str, Any]]


class PolicyDeleted(Ok):
    deleted: bool


class AutoscaleStatus(_Answer):
    app: str
    policy: AutoscalePolicy | None
    enabled: bool
    regions: dict[str, dict[str, Any]]


class MachineEnv(_Answer):
    app_name: str
    env: dict[str, str]


class CreatedInvitation(Invitation):
    """An invitation with its plain value, shown in this answer only."""

    invitation: str


class CreatedOrg(Organization):
    admin_invitation: CreatedInvitation | None = None


class OrgShown(Organization):
    members: list[Member]
    apps: list[str]


class CreatedToken(TokenInfo):
    """A token's record with its plain value, shown in this answer only."""

    token: str


class AcceptedInvitation(CreatedToken):
    membership: Invitation
