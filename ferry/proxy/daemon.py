"""``ferry proxy``: one region's edge — the proxy, its routing-table watch, DNS and reports.

Threads: the route watcher (long-polls the control plane, keeps the table on
disk) and the traffic reporter; the proxy itself and the edge DNS run on one
uvloop event loop. The proxy never waits on the control plane: requests are
routed with whatever table the watcher last kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ferry.client import FerryClient
from ferry.errors import FerryError
from ferry.model.machine_waf import WafEvent
from ferry.net.flycast_lan_sync import EdgeLanView
from ferry.proxy.dns import serve_dns
from ferry.proxy.edge_mesh import start_edge_mesh
from ferry.proxy.flycast import FlycastListeners
from ferry.proxy.flycast_fast import FlycastFastPath
from ferry.proxy.flycast_feed import FlycastWatcher
from ferry.proxy.limits import LoadTracker
from ferry.proxy.metrics import EdgeStats
from ferry.proxy.routes import RouteTable
from ferry.proxy.server import EdgeProxy
from ferry.proxy.static_cache import StaticCache
from ferry.proxy.statics import StaticsServer
from ferry.proxy.waf_events import ship_waf_events
from ferry.proxy.wake import MachineWaker
from ferry.proxy.watch import RouteWatcher
from ferry.tls.bundle import EdgeTls
from ferry.tls.cluster_certs import edge_tls_from_files
from ferry.tls.edge_feed import EdgeTlsFeed
from ferry.tls.edge_tls import merge_sources, static_source
from ferry.waf.workers import WorkerEngine

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
    #: HTTPS on ``listen_address``: the port and the default certificate (PEM files).
    https_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: The WireGuard mesh (docs/networking.md): where other nodes reach this edge's
    #: WireGuard (None: no mesh), and the LAN it reaches hosts' machines on directly.
    mesh_endpoint: str | None = None
    mesh_scope: str = "ferry"
    lan: tuple[ipaddress.IPv4Network, ...] | None = None


def edge_tls_source(settings: EdgeSettings) -> Callable[[], EdgeTls] | None:
    """The certificates the edge serves: the one given on its command line (the
    cluster wildcard); None without one. ``run_edge`` merges the control plane's
    feed over it with ``ferry.tls.edge_tls.merge_sources``."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    return static_source(edge_tls_from_files(settings.tls_cert, settings.tls_key))


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


def freeze_startup_heap() -> None:
    """Move everything alive now (modules, the route table, contexts: the startup heap) out
    of the cyclic garbage collector's view, once the edge has started.

    Each connection leaves a few reference cycles (protocol objects and their parsers),
    so the collector runs every few dozen connections, and its full passes walked the
    whole startup heap (about 50,000 objects): ~15 µs per new connection measured
    (``bench/https_bench.py``). Frozen objects are still freed when nothing refers to
    them; only cycles among them would stay (none are made at startup on purpose).
    """
    gc.collect()
    gc.freeze()


def run_edge(settings: EdgeSettings) -> None:
    """Run the region's edge until SIGTERM/SIGINT. Blocking."""
    import uvloop

    client = FerryClient(settings.api_url, settings.token)
    watcher = RouteWatcher(client, settings.state_dir / "routes.json", settings.lan)
    watcher.load_cached()
    stop = threading.Event()
    threading.Thread(target=watcher.run, args=(stop,), name="routes", daemon=True).start()
    feed = EdgeTlsFeed(client, settings.region, settings.state_dir / "tls.json")
    feed.load_cached()  # certificates survive a restart while the control plane is down
    threading.Thread(target=feed.run, args=(stop,), name="tls", daemon=True).start()
    # Flycast rides the mesh: hosts route its addresses over WireGuard to this edge.
    flycast = FlycastWatcher(client, settings.region, settings.state_dir / "flycast.json")
    lan_view = EdgeLanView()  # the mesh thread's LAN hosts, for Flycast's kernel path
    if settings.mesh_endpoint:
        flycast.load_cached()  # answers at once, even while the control plane is down
        threading.Thread(target=flycast.run, args=(stop,), name="flycast", daemon=True).start()
        start_edge_mesh(
            client,
            settings.region,
            settings.mesh_scope,
            settings.mesh_endpoint,
            settings.state_dir,
            stop,
            lan_view,
        )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        rtt = {**settings.rtt_ms, settings.region: 0.0}
        cluster_tls = edge_tls_source(settings)
        # The control plane's certificates (ACME) override the cluster wildcard by name.
        tls = feed.current if cluster_tls is None else merge_sources(cluster_tls, feed.current)
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
            https_listen=(settings.listen_address, settings.https_port)
            if settings.https_port
            else None,
            tls=tls,
            metrics_listen=(settings.listen_address, settings.metrics_port)
            if settings.metrics_port
            else None,
            waf_engine=WorkerEngine(),  # worker processes start when an app turns [waf] on
        )
        await proxy.start()
        flycast_listeners = FlycastListeners(
            proxy.http, flycast.current, watcher.current, tcp=proxy.tcp
        )
        flycast_task = loop.create_task(flycast_listeners.run()) if settings.mesh_endpoint else None
        fast_path = FlycastFastPath(
            flycast.current, watcher.current, rtt, proxy.health, lan_view,
            publish=partial(client.publish_flycast_fast, settings.region),
        )  # fmt: skip
        fast_task = loop.create_task(fast_path.run()) if settings.mesh_endpoint else None
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
        if proxy.https_address is not None:
            log.info("edge %s serving https on %s:%d", settings.region, *proxy.https_address)
        freeze_startup_heap()
        reporter = loop.create_task(
            _report_loop(client, settings.region, proxy.stats, proxy.load, watcher)
        )

        async def send_waf_events(batch: list[WafEvent]) -> None:
            await loop.run_in_executor(None, client.report_waf_events, settings.region, batch)

        shipper = loop.create_task(ship_waf_events(send_waf_events, proxy.waf_events))
        try:
            await done.wait()
        finally:
            for task in (reporter, shipper, flycast_task, fast_task):
                if task is None:
                    continue
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await fast_path.close()
            await flycast_listeners.close()
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
