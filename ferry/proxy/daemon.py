"""``ferry proxy``: one region's edge — the proxy, its routing-table watch, DNS and reports.

Threads: the route watcher (long-polls the control plane, keeps the table on
disk) and the traffic reporter; the proxy itself and the edge DNS run on one
uvloop event loop. The proxy never waits on the control plane: requests are
routed with whatever table the watcher last kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ferry.client import FerryClient
from ferry.errors import FerryError
from ferry.proxy.dns import serve_dns
from ferry.proxy.limits import LoadTracker
from ferry.proxy.metrics import EdgeStats
from ferry.proxy.routes import RouteTable
from ferry.proxy.server import EdgeProxy
from ferry.proxy.static_cache import StaticCache
from ferry.proxy.statics import StaticsServer
from ferry.proxy.wake import MachineWaker
from ferry.proxy.watch import RouteWatcher
from ferry.tls.edge_feed import EdgeTlsFeed

log = logging.getLogger("ferry.proxy")

REPORT_SECONDS = 2.0


@dataclass(frozen=True)
class EdgeSettings:
    region: str
    domain: str
    listen_address: str
    http_port: int
    metrics_port: int | None
    dns_port: int | None
    rtt_ms: Mapping[str, float]
    state_dir: Path
    api_url: str
    token: str
    backhaul_listen: tuple[str, int] | None = None
    backhaul_peers: Mapping[str, tuple[str, int]] | None = None
    insecure_registries: tuple[str, ...] = ()


def traffic_report(
    stats: EdgeStats, load: LoadTracker, window_seconds: float, table: RouteTable | None = None
) -> dict[str, object]:
    """The body of ``POST /v1/edges/{region}/traffic`` from the proxy's counters. Pure.

    Counters are cumulative since the proxy started; the autoscaler takes
    differences between reports for rates. With ``table``, only its apps and
    machines are reported (the API refuses a report naming others: requests for
    a host that is no app, machines gone since).
    """
    apps: dict[str, dict[str, object]] = {}
    for app, s in stats.summary().items():
        if table is not None and app not in table.apps:
            continue
        machines = load.machines_of(app)
        if table is not None:
            known = {b.machine_id for b in table.apps[app]}
            machines = {mid: v for mid, v in machines.items() if mid in known}
        apps[app] = {
            "requests": s.requests,
            "bytes_in": s.bytes_in,
            "bytes_out": s.bytes_out,
            "p50_ms": round(s.p50_seconds * 1000, 2),
            "p99_ms": round(s.p99_seconds * 1000, 2),
            "in_flight": sum(in_flight for in_flight, _ in machines.values()),
            "unserved_total": stats.unserved.get(app, 0),
            "machines": {
                mid: {"in_flight": in_flight, "requests_total": total}
                for mid, (in_flight, total) in machines.items()
            },
        }
    return {"window_seconds": max(window_seconds, 0.001), "apps": apps}


def run_edge(settings: EdgeSettings) -> None:
    """Run the region's edge until SIGTERM/SIGINT. Blocking."""
    import uvloop

    client = FerryClient(settings.api_url, settings.token)
    watcher = RouteWatcher(client, settings.state_dir / "routes.json")
    watcher.load_cached()
    stop = threading.Event()
    threading.Thread(target=watcher.run, args=(stop,), name="routes", daemon=True).start()
    feed = EdgeTlsFeed(client, settings.region, settings.state_dir / "tls.json")
    feed.load_cached()  # certificates survive a restart while the control plane is down
    threading.Thread(target=feed.run, args=(stop,), name="tls", daemon=True).start()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        rtt = {**settings.rtt_ms, settings.region: 0.0}
        proxy = EdgeProxy(
            settings.region,
            settings.domain,
            watcher.current,
            settings.rtt_ms,
            wake=MachineWaker(client, watcher.current, rtt),
            backhaul_listen=settings.backhaul_listen,
            backhaul_peers=settings.backhaul_peers,
            statics=StaticsServer(
                watcher.current,
                StaticCache(
                    settings.state_dir / "statics",
                    insecure_registries=settings.insecure_registries,
                ),
            ),
            http_listen=(settings.listen_address, settings.http_port),
            metrics_listen=(settings.listen_address, settings.metrics_port)
            if settings.metrics_port
            else None,
            tls=feed.current,
        )
        await proxy.start()
        dns = region_dns = None
        if settings.dns_port:
            dns = await serve_dns(
                settings.domain, settings.listen_address, settings.dns_port, tls=feed.current
            )
            region_address = settings.backhaul_listen[0] if settings.backhaul_listen else None
            if region_address is not None and region_address != settings.listen_address:
                # The same answers on the region's own address, which the control plane and
                # the cluster's ACME CA reach (docs/certificates.md).
                region_dns = await serve_dns(
                    settings.domain, settings.listen_address, settings.dns_port,
                    tls=feed.current, bind=region_address,
                )  # fmt: skip
        log.info(
            "edge %s serving http://*.%s on %s:%d (table v%d)",
            settings.region,
            settings.domain,
            settings.listen_address,
            settings.http_port,
            watcher.current().version,
        )
        reporter = loop.create_task(
            _report_loop(client, settings.region, proxy.stats, proxy.load, watcher)
        )
        try:
            await done.wait()
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            if dns is not None:
                dns.close()
            if region_dns is not None:
                region_dns.close()
            await proxy.stop()
            stop.set()

    uvloop.run(main())
    log.info("edge %s stopped", settings.region)


async def _report_loop(
    client: FerryClient, region: str, stats: EdgeStats, load: LoadTracker, watcher: RouteWatcher
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        await asyncio.sleep(REPORT_SECONDS)
        body = traffic_report(stats, load, loop.time() - started, watcher.current())
        try:
            await loop.run_in_executor(None, client.report_traffic, region, body)
        except FerryError as exc:
            log.debug("traffic report failed: %s", exc)
