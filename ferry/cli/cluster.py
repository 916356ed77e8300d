"""`ferry cluster up/down/status`: the embedded cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from ferry.cluster.lifecycle import cluster_down, cluster_status, cluster_up
from ferry.cluster.pebble import acme_root_pem
from ferry.cluster.settings import DEFAULT_REGIONS, ClusterSettings, default_home
from ferry.errors import ValidationError
from ferry.tls.cluster_certs import cluster_tls_files

app = typer.Typer(
    no_args_is_help=True, help="Run Ferry on this one machine: regions as network namespaces."
)
console = Console(width=None if sys.stdout.isatty() else 200)

HomeOption = Annotated[
    Path, typer.Option("--home", envvar="FERRY_HOME", help="State directory of the cluster.")
]


@app.command("up")
def up(
    home: HomeOption = default_home(),
    regions: Annotated[str, typer.Option(help="Comma-separated region codes.")] = ",".join(
        DEFAULT_REGIONS
    ),
    hosts_per_region: Annotated[int, typer.Option(help="Hosts (agents) per region.")] = 1,
    host_cpus: Annotated[int, typer.Option(help="CPUs each host offers to machines.")] = 8,
    host_memory_mb: Annotated[int, typer.Option(help="Memory each host offers, MB.")] = 4096,
    api_port: Annotated[int, typer.Option(help="Port of the API on 127.0.0.1.")] = 4280,
    registry_port: Annotated[int, typer.Option(help="Port of the cluster registry.")] = 5000,
    wan_rtt: Annotated[
        list[str] | None,
        typer.Option(help="Round-trip time of a region pair, e.g. ams-xyz=80; repeat."),
    ] = None,
    wan_jitter: Annotated[
        str, typer.Option(help='WAN jitter: "none", "spread" (measured P95) or milliseconds.')
    ] = "none",
    readonly_root: Annotated[
        bool, typer.Option(help="Give machines a read-only root filesystem (a Ferry option).")
    ] = False,
    remote_host: Annotated[
        list[str] | None,
        typer.Option(
            help="Add a host to REGION that shares no network with the others and joins "
            "with a join token over the WAN (its machines reached over WireGuard); repeat."
        ),
    ] = None,
) -> None:
    """Start the embedded cluster in the background (idempotent)."""
    settings = ClusterSettings(
        home=home,
        wan_rtt_ms=parse_rtt_overrides(wan_rtt or []),
        wan_jitter=parse_jitter(wan_jitter),
        regions=tuple(r.strip() for r in regions.split(",") if r.strip()),
        hosts_per_region=hosts_per_region,
        host_cpus=host_cpus,
        host_memory_mb=host_memory_mb,
        api_port=api_port,
        registry_port=registry_port,
        readonly_root=readonly_root,
        remote_hosts=tuple(remote_host or ()),
    )
    _ = settings.plan  # validates regions and sizes before anything starts
    settings.latency.require(settings.regions)  # every pair needs a round-trip time
    with console.status("starting the embedded cluster…"):
        used = cluster_up(settings)
    console.print(
        f"[green]cluster up[/green]: regions {', '.join(used.regions)}, "
        f"{len(used.plan.hosts) + len(used.plan.remote_hosts)} hosts; "
        f"API {used.api_url}; registry {used.registry_address}"
    )
    console.print(f"logs in {used.log_dir}; stop with `ferry cluster down`")


@app.command("ca")
def ca(
    home: HomeOption = default_home(),
    acme: Annotated[
        bool,
        typer.Option(
            "--acme",
            help="Print instead the root of the cluster's ACME CA (Pebble), which signs "
            "the certificates of `ferry certs add`; it changes at every `ferry cluster up`.",
        ),
    ] = False,
) -> None:
    """Print the cluster CA's certificate (PEM), for clients to trust: e.g.
    `ferry cluster ca > ferry-ca.pem; curl --cacert ferry-ca.pem https://…`."""
    if acme:
        sys.stdout.write(acme_root_pem(home / "pebble"))
        return
    path = cluster_tls_files(home).ca
    if not path.is_file():
        raise ValidationError(
            f"the cluster in {home} has no CA yet", hint="start it with `ferry cluster up`"
        )
    sys.stdout.write(path.read_text())


@app.command("down")
def down(
    home: HomeOption = default_home(),
    purge: Annotated[bool, typer.Option(help="Also delete the state directory.")] = False,
) -> None:
    """Stop the cluster and remove its namespaces, containers and mounts."""
    with console.status("stopping the embedded cluster…"):
        found = cluster_down(home, purge=purge)
    console.print("cluster down" if found else f"no cluster in {home}: nothing to do")


@app.command("status")
def status(
    home: HomeOption = default_home(),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show whether the cluster runs, its regions, hosts, addresses and domain."""
    st = cluster_status(home)
    s = st.settings
    plan = s.plan
    data = {
        "running": st.running,
        "supervisor_pid": st.supervisor_pid,
        "home": str(s.home),
        "api_url": s.api_url,
        "internal_api_url": s.internal_api_url,
        "registry": s.registry_address,
        "domain": s.domain,
        "edge_address": plan.edge_address,
        "prefix": s.prefix,
        "regions": [
            {
                "code": r.code,
                "netns": r.netns,
                "edge_address": r.edge_address,
                "hosts": [
                    {
                        "id": h.host_id,
                        "netns": h.netns,
                        "address": h.address,
                        "machine_subnet": h.machine_subnet,
                        "up": h.host_id in st.hosts_up,
                    }
                    for h in r.hosts
                ],
            }
            for r in plan.regions
        ],
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    console.print(
        f"cluster {'[green]running[/green]' if st.running else '[red]stopped[/red]'}"
        f" — API {s.api_url}, registry {s.registry_address}, home {s.home}"
    )
    table = Table("region", "host", "address", "machines", "status")
    for r in plan.regions:
        for h in r.hosts:
            up_text = "[green]up[/green]" if h.host_id in st.hosts_up else "[red]down[/red]"
            table.add_row(r.code, h.host_id, h.address, h.machine_subnet, up_text)
    console.print(table)


def parse_rtt_overrides(items: list[str]) -> dict[str, float]:
    """``["ams-xyz=80"]`` -> ``{"ams-xyz": 80.0}``; ``ValidationError`` names a bad item."""
    overrides = {}
    for item in items:
        pair, _, value = item.partition("=")
        try:
            overrides[pair.strip()] = float(value)
        except ValueError:
            raise ValidationError(
                f"invalid --wan-rtt {item!r}", hint="write it as REGION-REGION=MS, e.g. ams-xyz=80"
            ) from None
    return overrides


def parse_jitter(text: str) -> Literal["none", "spread"] | float:
    if text in ("none", "spread"):
        return "none" if text == "none" else "spread"
    try:
        return float(text)
    except ValueError:
        raise ValidationError(
            f"invalid --wan-jitter {text!r}", hint='use "none", "spread" or a number of ms'
        ) from None
