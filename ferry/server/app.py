"""The FastAPI application of the control plane, built from a store and a clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

import ferry
from ferry.autoscale.distances import RegionDistances
from ferry.secrets import SecretsKey
from ferry.server.audit import AuditMiddleware
from ferry.server.auth import Authenticator, RateLimits, authorizer
from ferry.server.certs_loop import CertLoop
from ferry.server.certs_service import CertSettings
from ferry.server.clock import Clock, SystemClock
from ferry.server.context import ControlPlane
from ferry.server.errors import install_error_handlers
from ferry.server.openapi import AUTHORIZED_ERRORS, PUBLIC_ERRORS, install_openapi
from ferry.server.routes import (
    apps,
    autoscale,
    certs,
    edges,
    flycast,
    hosts,
    join,
    machines,
    mesh,
    orgs,
    platform,
    postgres,
    releases,
    secrets,
    volumes,
    waf,
    wireguard,
)
from ferry.server.routes import audit as audit_routes
from ferry.server.routes import exec as exec_routes
from ferry.store import StateStore

__all__ = ["create_app"]


def create_app(
    store: StateStore,
    *,
    admin_token: str,
    clock: Clock | None = None,
    host_down_after: float = 10.0,
    registry: str = "",
    run_liveness: bool = True,
    run_autoscaler: bool = True,
    autoscale_interval: float = 1.0,
    distances: RegionDistances | None = None,
    secrets_key: SecretsKey | None = None,
    rate_limits: RateLimits | None = None,
    cert_settings: CertSettings | None = None,
    run_certificates: bool = True,
    certificates_interval: float = 2.0,
) -> FastAPI:
    """Build the API over ``store``. Does no I/O until served.

    While the app runs (its lifespan), a liveness loop marks hosts down after
    ``host_down_after`` seconds without a heartbeat; ``run_liveness=False``
    leaves it to the caller (tests call ``app.state.plane.liveness.run_once()``).
    Likewise the autoscaler runs a cycle every ``autoscale_interval`` seconds
    unless ``run_autoscaler=False`` (tests call ``plane.autoscaler.run_once()``), and so
    does the Postgres follow loop (``plane.pg_follow``, docs/postgres.md).
    ``distances`` (region RTTs, see ``ferry.autoscale.load_latency_file``)
    order capacity fallbacks; without them the order is alphabetical.
    ``app.state.plane`` is the ``ControlPlane`` behind the routes. The store is
    not closed by the app: whoever opened it closes it. ``secrets_key`` seals app
    secrets (``None``: a new random key, for tests; ``run_server`` loads the real one).
    ``rate_limits`` are the per-token request limits (default ``RateLimits()``: 100/s,
    bursts of 200). ``cert_settings``: the ACME CA certificates are ordered from; with a
    directory URL, the certificate loop runs every ``certificates_interval`` seconds unless
    ``run_certificates=False`` (tests call ``plane.certs.run_once()``).
    """
    if not admin_token:
        raise ValueError("admin_token must not be empty")
    plane = ControlPlane.build(
        store,
        clock or SystemClock(),
        host_down_after=host_down_after,
        registry=registry,
        distances=distances,
        secrets_key=secrets_key,
        cert_settings=cert_settings,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if run_liveness:
            tasks.append(asyncio.create_task(plane.liveness.run_forever()))
        if run_autoscaler:
            tasks.append(asyncio.create_task(plane.autoscaler.run_forever(autoscale_interval)))
            tasks.append(asyncio.create_task(plane.pg_follow.run_forever(autoscale_interval)))
        if run_certificates and plane.certs.settings.directory_url:
            loop = CertLoop(plane.certs)
            tasks.append(asyncio.create_task(loop.run_forever(certificates_interval)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await plane.secrets_rollouts.stop()

    app = FastAPI(
        title="Ferry control plane",
        version=ferry.__version__,
        description="Fly Machines API paths and shapes; see docs/api.md.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.plane = plane
    install_error_handlers(app)
    plane.auth = Authenticator(store, admin_token, plane.clock, limits=rate_limits)
    # The services are the only writers of what the cache holds: they tell it of each change.
    plane.access.listeners.append(plane.auth.cache.invalidate)
    plane.apps.listeners.append(plane.auth.cache.invalidate)
    authorized = [Depends(authorizer(plane.auth, plane.auth.cache.app_org))]
    app.include_router(platform.build_public_router())
    app.include_router(orgs.build_public_router(plane.access), responses=PUBLIC_ERRORS)
    app.include_router(join.build_public_router(plane.joins), responses=PUBLIC_ERRORS)
    errors = AUTHORIZED_ERRORS
    for module in (
        apps,
        machines,
        hosts,
        platform,
        edges,
        autoscale,
        releases,
        secrets,
        waf,
        certs,
        mesh,
        join,
        wireguard,
        volumes,
        flycast,
        postgres,
        exec_routes,
    ):
        app.include_router(module.build_router(plane), dependencies=authorized, responses=errors)
    app.include_router(orgs.build_router(plane.access), dependencies=authorized, responses=errors)
    app.include_router(exec_routes.build_console_router(plane))  # WebSockets authenticate alone
    app.include_router(audit_routes.build_router(plane), dependencies=authorized, responses=errors)
    install_openapi(app)
    # Every change and every refused cross-organization attempt goes into the trail.
    app.add_middleware(AuditMiddleware, store=store, clock=plane.clock)
    return app
