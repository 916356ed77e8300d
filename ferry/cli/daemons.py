"""`ferry server` and `ferry agent`: the long-running processes."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from ferry.errors import ConfigError


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def server_command(
    home: Annotated[Path, typer.Option(help="State directory (FERRY_HOME).")] = Path(
        os.environ.get("FERRY_HOME", "/var/lib/ferry")
    ),
    listen: Annotated[
        list[str] | None, typer.Option(help="host:port to serve on; repeat for several.")
    ] = None,
    registry: Annotated[
        str, typer.Option(help="host:port of the OCI registry the hosts pull from.")
    ] = "127.0.0.1:5000",
    store_url: Annotated[
        str | None, typer.Option(help="Store URL; default sqlite in FERRY_HOME/server.")
    ] = None,
    latency: Annotated[
        Path | None,
        typer.Option(help='JSON of region RTTs, {"rtt_ms": {"ams-iad": 84}}, for fallbacks.'),
    ] = None,
    rate_limit: Annotated[
        float, typer.Option(help="Requests per second per token (users, CI); 0: no limit.")
    ] = 100.0,
    rate_burst: Annotated[int, typer.Option(help="Requests a token may send at once.")] = 200,
    infra_rate_limit: Annotated[
        float, typer.Option(help="Requests per second per host or edge credential; 0: no limit.")
    ] = 1000.0,
    infra_rate_burst: Annotated[
        int, typer.Option(help="Requests a host or edge credential may send at once.")
    ] = 2000,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the control plane (HTTP API, store, scheduler, host liveness, autoscaler).

    The admin token is never rate limited; see docs/credentials-and-limits.md.
    """
    from ferry.server import run_server
    from ferry.server.auth import RateLimits
    from ferry.server.ratelimit import RateLimit

    _logging(verbose)
    try:
        limits = RateLimits(
            tokens=RateLimit(rate_limit, rate_burst),
            infra=RateLimit(infra_rate_limit, infra_rate_burst),
        )
    except ValueError as exc:
        raise ConfigError(
            f"invalid rate limit: {exc}",
            hint="give --rate-limit >= 0 and --rate-burst >= 1 (same for --infra-…)",
        ) from None
    run_server(
        home,
        listen or ["127.0.0.1:4280"],
        store_url,
        registry=registry,
        latency_file=latency,
        rate_limits=limits,
    )


def agent_command(
    host_id: Annotated[str, typer.Option(help="This host's id, e.g. ams-1.")],
    region: Annotated[str, typer.Option(help="This host's region code.")],
    address: Annotated[str, typer.Option(help="This host's address on the region network.")],
    machine_subnet: Annotated[str, typer.Option(help="CIDR of this host's machines.")],
    state_dir: Annotated[Path, typer.Option(help="Where images and containers live.")],
    api_url: Annotated[str, typer.Option(help="The control plane's URL.")],
    cpus: Annotated[int, typer.Option(help="CPUs this host offers.")] = os.cpu_count() or 1,
    memory_mb: Annotated[int, typer.Option(help="Memory this host offers, MB.")] = 4096,
    netns_prefix: Annotated[str, typer.Option(help="Prefix of machine namespaces.")] = "ferry-",
    cgroup_parent: Annotated[str, typer.Option(help="cgroup parent of machines.")] = "ferry",
    insecure_registry: Annotated[
        list[str] | None, typer.Option(help="Registry reached over plain HTTP.")
    ] = None,
    user_namespaces: Annotated[
        bool, typer.Option(help="Run each machine in a user namespace of its own.")
    ] = True,
    id_ranges_file: Annotated[
        Path | None,
        typer.Option(help="Table of machines' uid ranges; share it between agents of one kernel."),
    ] = None,
    readonly_root: Annotated[
        bool, typer.Option(help="Give machines a read-only root filesystem.")
    ] = False,
    mesh_endpoint: Annotated[
        str | None,
        typer.Option(help="ip:port other hosts reach this host's WireGuard at (turns the mesh on)"),
    ] = None,
    mesh_scope: Annotated[
        str, typer.Option(help="1-6 characters making WireGuard interface names unique")
    ] = "ferry",
    dns: Annotated[
        bool, typer.Option("--dns/--no-dns", help="Answer .internal names on fdaa::3")
    ] = False,
    dns_upstream: Annotated[
        str | None, typer.Option(help="ip:port of the resolver for other names")
    ] = None,
    isolation: Annotated[
        bool,
        typer.Option("--isolation/--no-isolation", help="Keep organizations apart with nftables"),
    ] = False,
    edge_source: Annotated[
        list[str] | None, typer.Option(help="CIDR that may open connections to machines; repeat")
    ] = None,
    protected: Annotated[
        list[str] | None, typer.Option(help="CIDR machines never reach; repeat")
    ] = None,
    service: Annotated[
        list[str] | None,
        typer.Option(help="ADDRESS:PORT/PROTO machines may reach all the same; repeat"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a host agent: keeps this host's machines as the control plane wants them."""
    from ferry.agent.daemon import Agent, AgentSettings
    from ferry.agent.isolation_keeper import IsolationSettings, parse_service
    from ferry.agent.private_net import PrivateNetSettings

    _logging(verbose)
    for item in service or ():
        parse_service(item)  # refused here, by name, not at the first ruleset
    token = os.environ.get("FERRY_API_TOKEN", "")
    if not token:
        raise ConfigError("FERRY_API_TOKEN is not set", hint="the agent needs the cluster token")
    settings = AgentSettings(
        host_id=host_id,
        region=region,
        address=address,
        cpus=cpus,
        memory_mb=memory_mb,
        machine_subnet=machine_subnet,
        state_dir=state_dir,
        netns_prefix=netns_prefix,
        api_url=api_url,
        token=token,
        cgroup_parent=cgroup_parent,
        insecure_registries=tuple(insecure_registry or ()),
        user_namespaces=user_namespaces,
        id_ranges_file=id_ranges_file,
        readonly_root=readonly_root,
        private_net=PrivateNetSettings(
            mesh_endpoint=mesh_endpoint,
            mesh_scope=mesh_scope,
            dns=dns,
            dns_upstream=dns_upstream,
        ),
        isolation=IsolationSettings(
            enabled=isolation,
            edge_sources=tuple(edge_source or ()),
            protected=tuple(protected or ()),
            services=tuple(service or ()),
        ),
    )
    Agent(settings).run()


def proxy_command(
    region: Annotated[str, typer.Option(help="This edge's region code.")],
    api_url: Annotated[str, typer.Option(help="The control plane's URL.")],
    state_dir: Annotated[Path, typer.Option(help="Where the routing table is cached.")],
    listen: Annotated[str, typer.Option(help="Address to serve on (the edge address).")],
    domain: Annotated[str, typer.Option(help="Apps are served at <app>.<domain>.")] = "ferry.test",
    http_port: Annotated[int, typer.Option(help="HTTP port.")] = 80,
    https_port: Annotated[
        int, typer.Option(help="HTTPS port, served when --tls-cert is given (0: off).")
    ] = 443,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="PEM certificate chain served for the names it covers (e.g. *.DOMAIN)."),
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The private key of --tls-cert.")] = None,
    metrics_port: Annotated[int, typer.Option(help="Prometheus /metrics port (0: off).")] = 9091,
    dns_port: Annotated[int, typer.Option(help="Edge DNS port (0: off).")] = 53,
    rtt: Annotated[
        list[str] | None, typer.Option(help="REGION=MS round-trip time to a region; repeat.")
    ] = None,
    backhaul_listen: Annotated[
        str | None, typer.Option(help="HOST:PORT where other edges forward to this region.")
    ] = None,
    peer: Annotated[
        list[str] | None,
        typer.Option(help="REGION=HOST:PORT: another region's backhaul listener; repeat."),
    ] = None,
    insecure_registry: Annotated[
        list[str] | None,
        typer.Option(help="Registry reached over plain HTTP, for the images of statics; repeat."),
    ] = None,
    mesh_endpoint: Annotated[
        str | None,
        typer.Option(help="ip:port other nodes reach this edge's WireGuard at (joins the mesh)"),
    ] = None,
    mesh_scope: Annotated[
        str, typer.Option(help="1-6 characters making WireGuard interface names unique")
    ] = "ferry",
    lan: Annotated[
        list[str] | None,
        typer.Option(
            help="CIDR of hosts' machine networks reached directly; others over 6PN. Repeat."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a region's edge proxy: routes each request to the nearest healthy machine."""
    from ferry.proxy.daemon import EdgeSettings, run_edge

    _logging(verbose)
    token = os.environ.get("FERRY_API_TOKEN", "")
    if not token:
        raise ConfigError("FERRY_API_TOKEN is not set", hint="the proxy needs the cluster token")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together", hint="give both, or neither")
    rtt_ms: dict[str, float] = {}
    for item in rtt or []:
        code, _, value = item.partition("=")
        try:
            rtt_ms[code] = float(value)
        except ValueError:
            raise ConfigError(
                f"invalid --rtt {item!r}", hint="write it as REGION=MS, e.g. iad=84"
            ) from None
    run_edge(
        EdgeSettings(
            region=region,
            domain=domain,
            listen_address=listen,
            http_port=http_port,
            https_port=https_port if tls_cert is not None else None,
            tls_cert=tls_cert,
            tls_key=tls_key,
            metrics_port=metrics_port or None,
            dns_port=dns_port or None,
            rtt_ms=rtt_ms,
            state_dir=state_dir,
            api_url=api_url,
            token=token,
            backhaul_listen=_host_port(backhaul_listen) if backhaul_listen else None,
            backhaul_peers={
                code: _host_port(address)
                for code, _, address in (item.partition("=") for item in peer or [])
            },
            insecure_registries=tuple(insecure_registry or ()),
            mesh_endpoint=mesh_endpoint,
            mesh_scope=mesh_scope,
            lan=_lan(lan),
        )
    )


def _lan(items: list[str] | None) -> tuple[ipaddress.IPv4Network, ...] | None:
    if not items:
        return None
    try:
        return tuple(ipaddress.IPv4Network(item, strict=False) for item in items)
    except ValueError as exc:
        raise ConfigError(
            f"invalid --lan: {exc}", hint="write it as a CIDR, e.g. 10.1.16.0/20"
        ) from None


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"invalid address {text!r}", hint="write it as HOST:PORT")
    return host, int(port)
