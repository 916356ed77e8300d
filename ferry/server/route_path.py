"""The full path template of the route a request matched, e.g.
``/v1/apps/{app_name}/machines/{machine_id}/lease``.

FastAPI (0.16x) keeps included routers as branches: ``scope["route"]`` is the
endpoint's own ``APIRoute``, whose ``path`` lacks the prefixes of the routers
it was included through (``/{machine_id}/lease`` for a route of
``machine_extras``, which ``machines`` includes under its prefix). The
prefixed template is in FastAPI's effective route context; older FastAPI
versions flatten routes, and there ``scope["route"].path`` is already full.
Authorization (``ferry.server.auth``) and the audit trail both need the full one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["route_template"]


def route_template(scope: Mapping[str, Any]) -> str | None:
    """The matched route's full template; ``None`` when no route matched."""
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, Mapping):
        full = getattr(fastapi_scope.get("effective_route_context"), "path_format", None)
        if isinstance(full, str) and full:
            return full
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else None
