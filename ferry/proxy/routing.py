"""Which machine gets a request: a pure decision over a snapshot.

No I/O, no clock; randomness comes from the caller's ``random.Random``. The
proxy builds an ``AppRoutes`` once per routing-table snapshot and app
(``plan_app_routes``) and asks ``choose_target`` for every request, so the
per-request cost is a walk over the app's machines.

The rule (Fly's documented one, with ``soft_limit`` honoured):

1. Only started, healthy machines (unknown health counts as healthy).
2. Regions are ordered by RTT from this edge (ties by region code); a
   ``fly-prefer-region`` region goes first.
3. In the nearest region with a machine under its ``hard_limit``: the least
   loaded machine under ``soft_limit`` (random among equals). If every
   machine there is at or over ``soft_limit``, a farther region's machine
   under ``soft_limit`` is taken only when that region is at most
   ``spill_rtt_ms`` farther. The default 0 never spills for soft limits: a
   busy nearby machine answers faster than an idle one an ocean away, and
   Fly documents cross-region routing only for hard limits and health.
   Otherwise the least loaded machine of the nearest region.
4. A region whose machines are all at ``hard_limit`` is skipped.
5. Nothing left: ``NoRoute("overflow")`` when started machines exist but are
   full (the caller queues briefly), otherwise a reason why none is usable.

A forced instance (``fly-force-instance-id``, Fly-Replay ``instance=``) is
that machine or nothing; a preferred one (Fly-Replay ``prefer_instance=``,
or the machine another edge picked for a request it forwarded) is that
machine when it is started, healthy and under its hard limit, else the rule.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ferry.proxy.routes import Backend, ServicePorts

__all__ = [
    "NO_PREFS",
    "AppRoutes",
    "Choice",
    "FastRegions",
    "NoRoute",
    "RoutePrefs",
    "Target",
    "choose_target",
    "fast_regions",
    "http_service",
    "pick_nearest_under_soft",
    "plan_app_routes",
    "route",
    "service_for_port",
]

NoRouteKind = Literal["overflow", "no_started", "unhealthy", "no_service", "no_candidate"]


@dataclass(frozen=True, slots=True)
class Target:
    """A machine and the port, limits and load kind of the service being routed to."""

    backend: Backend
    port: int
    soft_limit: int
    hard_limit: int | None  # None: no hard limit
    region_rtt_ms: float
    # (address, port): the upstream pool's key, made once per route table, not per request.
    upstream: tuple[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "upstream", (self.backend.address, self.port))

    @property
    def machine_id(self) -> str:
        return self.backend.machine_id


@dataclass(frozen=True, slots=True)
class AppRoutes:
    """An app's started machines, grouped by region nearest first (precomputed per snapshot)."""

    app: str
    regions: tuple[tuple[str, tuple[Target, ...]], ...]
    has_service: bool


@dataclass(frozen=True, slots=True)
class RoutePrefs:
    """What the request asks for: client headers and Fly-Replay targets."""

    prefer_region: str | None = None
    force_instance: str | None = None  # machine id (or instance id)
    only_regions: frozenset[str] | None = None  # Fly-Replay region=… (None: any)
    exclude_instance: str | None = None  # Fly-Replay elsewhere=true
    # Fly-Replay prefer_instance=…, or the machine another edge picked for a request it
    # forwarded here: that machine when it can take the request, else the usual rule.
    prefer_instance: str | None = None


NO_PREFS = RoutePrefs()


@dataclass(frozen=True, slots=True)
class Choice:
    target: Target
    reason: str

    @property
    def backend(self) -> Backend:
        return self.target.backend


@dataclass(frozen=True, slots=True)
class NoRoute:
    kind: NoRouteKind
    reason: str


def http_service(backend: Backend) -> ServicePorts | None:
    """The service with an ``http`` handler, else None."""
    for service in backend.services:
        if "http" in service.handlers:
            return service
    return None


def service_for_port(backend: Backend, public_port: int) -> ServicePorts | None:
    """The service listening on ``public_port`` of the edge, else None."""
    for service in backend.services:
        if public_port in service.ports:
            return service
    return None


def plan_app_routes(
    app: str,
    backends: Iterable[Backend],
    rtt_ms: Mapping[str, float],
    *,
    public_port: int | None = None,
) -> AppRoutes:
    """Group the started machines offering the service by region, nearest first.

    ``public_port=None`` selects the HTTP service; otherwise the service on
    that public port. Regions without an RTT entry sort last.
    """
    by_region: dict[str, list[Target]] = {}
    has_service = False
    for backend in backends:
        service = (
            http_service(backend) if public_port is None else service_for_port(backend, public_port)
        )
        if service is None:
            continue
        has_service = True
        if not backend.started:
            continue
        rtt = rtt_ms.get(backend.region, float("inf"))
        conc = service.concurrency
        by_region.setdefault(backend.region, []).append(
            Target(backend, service.internal_port, conc.soft_limit, conc.hard_limit, rtt)
        )
    ordered = sorted(by_region.items(), key=lambda item: (item[1][0].region_rtt_ms, item[0]))
    return AppRoutes(
        app=app,
        regions=tuple((region, tuple(targets)) for region, targets in ordered),
        has_service=has_service,
    )


def _pick_least_loaded(
    targets: Sequence[Target], load: Mapping[str, int], rng: random.Random
) -> Target:
    best_load = min(load.get(t.backend.machine_id, 0) for t in targets)
    best = [t for t in targets if load.get(t.backend.machine_id, 0) == best_load]
    return best[0] if len(best) == 1 else rng.choice(best)


def _usable(target: Target, health: Mapping[str, bool], prefs: RoutePrefs) -> bool:
    backend = target.backend
    if not health.get(backend.machine_id, True):
        return False
    excluded = prefs.exclude_instance
    return excluded is None or excluded not in (backend.machine_id, backend.instance_id)


def choose_target(
    routes: AppRoutes,
    load: Mapping[str, int],
    health: Mapping[str, bool],
    prefs: RoutePrefs,
    rng: random.Random,
    *,
    spill_rtt_ms: float = 0.0,
    checked: Mapping[str, bool] | None = None,
) -> Choice | NoRoute:
    """Pick the machine for one request (see the module docstring for the rule).

    ``checked`` is ``health`` without the passive marks (failed connects):
    when ``health`` leaves no machine and ``checked`` would, it is used
    instead — failed connects alone never take an app's last machines out
    (Envoy's panic threshold at 100%), failing health checks do.
    """
    decision = _choose(routes, load, health, prefs, rng, spill_rtt_ms)
    if (
        checked is not None
        and isinstance(decision, NoRoute)
        and decision.kind == "unhealthy"
        and len(checked) < len(health)
    ):
        return _choose(routes, load, checked, prefs, rng, spill_rtt_ms)
    return decision


def _choose(
    routes: AppRoutes,
    load: Mapping[str, int],
    health: Mapping[str, bool],
    prefs: RoutePrefs,
    rng: random.Random,
    spill_rtt_ms: float,
) -> Choice | NoRoute:
    app = routes.app
    if not routes.has_service:
        return NoRoute("no_service", f"{app} has no service for this port")
    if not routes.regions:
        return NoRoute("no_started", f"{app} has no started machine")
    regions: Sequence[tuple[str, tuple[Target, ...]]] = routes.regions
    if prefs.force_instance is not None:
        return _forced(routes, load, health, prefs.force_instance)
    if prefs.prefer_instance is not None:
        picked = _forced(routes, load, health, prefs.prefer_instance)
        if isinstance(picked, Choice):
            return picked
    if prefs.only_regions is not None:
        regions = [r for r in regions if r[0] in prefs.only_regions]
        if not regions:
            wanted = ",".join(sorted(prefs.only_regions))
            return NoRoute("no_candidate", f"{app} has no started machine in {wanted}")
    if prefs.prefer_region is not None:
        preferred = [r for r in regions if r[0] == prefs.prefer_region]
        regions = preferred + [r for r in regions if r[0] != prefs.prefer_region]

    any_usable = False
    for index, (region, targets) in enumerate(regions):
        usable = [t for t in targets if _usable(t, health, prefs)]
        if not usable:
            continue
        any_usable = True
        under_hard = [
            t
            for t in usable
            if t.hard_limit is None or load.get(t.backend.machine_id, 0) < t.hard_limit
        ]
        if not under_hard:
            continue
        under_soft = [t for t in under_hard if load.get(t.backend.machine_id, 0) < t.soft_limit]
        if under_soft:
            target = _pick_least_loaded(under_soft, load, rng)
            return Choice(target, f"least loaded under soft limit in nearest region {region}")
        spilled = _spill(
            regions[index + 1 :], usable[0].region_rtt_ms, load, health, prefs, rng, spill_rtt_ms
        )
        if spilled is not None:
            return spilled
        target = _pick_least_loaded(under_hard, load, rng)
        return Choice(
            target, f"all machines in {region} at soft limit; least loaded under hard limit"
        )
    if not any_usable:
        return NoRoute("unhealthy", f"{app} has no healthy started machine")
    return NoRoute("overflow", f"all machines of {app} are at their hard limit")


FastRegions = tuple[tuple[tuple[str, int, int, Target], ...], ...]
_NO_HARD_LIMIT = 1 << 62


def fast_regions(routes: AppRoutes) -> FastRegions:
    """``routes`` flattened for ``pick_nearest_under_soft``: per region, nearest first,
    ``(machine_id, hard_limit, soft_limit, target)`` (no hard limit: a huge one)."""
    return tuple(
        tuple(
            (
                t.backend.machine_id,
                _NO_HARD_LIMIT if t.hard_limit is None else t.hard_limit,
                t.soft_limit,
                t,
            )
            for t in targets
        )
        for _, targets in routes.regions
    )


def pick_nearest_under_soft(
    regions: FastRegions, load: dict[str, int], health: dict[str, bool], rng: random.Random
) -> Target | None:
    """``choose_target``'s target for a request without preferences, in its common case.

    The common case: the nearest region with a healthy machine under its hard
    limit has one under its soft limit; the least loaded of those is picked
    (random among equals, drawing from ``rng`` exactly as ``choose_target``
    does). Returns None whenever the full rule must decide (nothing under the
    soft limit there, no usable machine, no service): call ``choose_target``.
    ``regions`` comes from ``fast_regions``. One pass, no lists unless there are ties.
    """
    for targets in regions:
        best: Target | None = None
        ties: list[Target] | None = None
        best_load = 0
        under_hard = False
        for machine_id, hard, soft, target in targets:
            if not health.get(machine_id, True):
                continue
            count = load.get(machine_id, 0)
            if count >= hard:
                continue
            under_hard = True
            if count >= soft:
                continue
            if best is None or count < best_load:
                best, best_load, ties = target, count, None
            elif count == best_load:
                ties = [best, target] if ties is None else [*ties, target]
        if best is not None:
            return best if ties is None else rng.choice(ties)
        if under_hard:
            return None
    return None


def _spill(
    farther: Sequence[tuple[str, tuple[Target, ...]]],
    nearest_rtt: float,
    load: Mapping[str, int],
    health: Mapping[str, bool],
    prefs: RoutePrefs,
    rng: random.Random,
    spill_rtt_ms: float,
) -> Choice | None:
    if spill_rtt_ms <= 0:
        return None
    for region, targets in farther:
        if targets[0].region_rtt_ms - nearest_rtt > spill_rtt_ms:
            return None
        under_soft = [
            t
            for t in targets
            if _usable(t, health, prefs) and load.get(t.backend.machine_id, 0) < t.soft_limit
        ]
        if under_soft:
            target = _pick_least_loaded(under_soft, load, rng)
            return Choice(
                target, f"nearest region at soft limit; spilled to {region} within spill RTT"
            )
    return None


def _forced(
    routes: AppRoutes, load: Mapping[str, int], health: Mapping[str, bool], wanted: str
) -> Choice | NoRoute:
    for _, targets in routes.regions:
        for target in targets:
            backend = target.backend
            if wanted not in (backend.machine_id, backend.instance_id):
                continue
            if not health.get(backend.machine_id, True):
                return NoRoute("unhealthy", f"machine {wanted} of {routes.app} is unhealthy")
            if (
                target.hard_limit is not None
                and load.get(backend.machine_id, 0) >= target.hard_limit
            ):
                return NoRoute("overflow", f"machine {wanted} of {routes.app} is at its hard limit")
            return Choice(target, f"forced to instance {wanted}")
    return NoRoute("no_candidate", f"{routes.app} has no started machine {wanted}")


def route(
    backends: Iterable[Backend],
    region: str,
    rtt_ms: Mapping[str, float],
    load: Mapping[str, int],
    health: Mapping[str, bool],
    prefs: RoutePrefs,
    rng: random.Random,
    *,
    app: str = "",
    public_port: int | None = None,
    spill_rtt_ms: float = 0.0,
    checked: Mapping[str, bool] | None = None,
) -> Choice | NoRoute:
    """One-shot form: plan the app's routes from ``backends`` and choose.

    ``region`` is this edge's region; it is nearest (RTT 0) whatever
    ``rtt_ms`` says about it.
    """
    backends = tuple(backends)
    rtts = {**rtt_ms, region: 0.0}
    name = app or (backends[0].app if backends else "app")
    routes = plan_app_routes(name, backends, rtts, public_port=public_port)
    return choose_target(
        routes, load, health, prefs, rng, spill_rtt_ms=spill_rtt_ms, checked=checked
    )
