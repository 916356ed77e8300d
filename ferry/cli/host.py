"""`ferry host token create|list|revoke` (operators) and `ferry host join` (a new server).

A join token is the operator's one-time consent: `ferry host token create
--region sin` prints one; on the new server, `ferry host join --token … URL
--region sin` registers the server as a host, keeps the host's own credential
in its state directory (mode 0600) and runs the agent. The token may come
from `--token`, `--token-file` or `$FERRY_JOIN_TOKEN` (which keeps it off the
command line and out of `ps`).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from rich.text import Text

from ferry.cli import context, output
from ferry.cli.orgs import JSON_HELP, timestamp
from ferry.client import FerryClient
from ferry.errors import ValidationError

app = typer.Typer(no_args_is_help=True, help="Hosts: join a server to the cluster.")
token_app = typer.Typer(no_args_is_help=True, help="Join tokens (operators).")
app.add_typer(token_app, name="token")

DEFAULT_STATE_DIR = Path("/var/lib/ferry/host")
HOST_FILE = "host.json"


def _json() -> Any:
    return typer.Option(False, "--json", "-j", help=JSON_HELP)


@token_app.command("create")
def create_token(
    ctx: typer.Context,
    region: str | None = typer.Option(None, "--region", "-r", help="Good for this region only"),
    name: str = typer.Option("", "--name", "-n", help="A name to recognise it by"),
    expiry: str | None = typer.Option(None, "--expiry", "-x", help="e.g. 30m, 24h (default 1h)"),
    as_json: bool = _json(),
) -> None:
    """A join token, good once (shown once, alone on stdout)."""
    info, plain = context.client(ctx).create_join_token(name=name, region=region, expiry=expiry)
    if as_json:
        output.print_json({"token": plain, **output.to_jsonable(info)})
        return
    where = f"region {info.region}" if info.region else "any region"
    output.stderr().print(
        Text(
            f"Join token {info.id} for {where}, good once until {timestamp(info.expires_at)}. "
            "On the new server: FERRY_JOIN_TOKEN=… ferry host join URL --region REGION",
            style="dim",
        )
    )
    typer.echo(plain)


@token_app.command("list")
def list_tokens(ctx: typer.Context, as_json: bool = _json()) -> None:
    """Every join token, without its value: who used it, when it expires."""
    found = context.client(ctx).list_join_tokens()
    if as_json:
        output.print_json(found)
        return
    rows = [
        (
            t.id,
            t.name,
            t.region or "any",
            f"used by {t.used_by}" if t.used_by else "unused",
            timestamp(t.expires_at),
        )
        for t in found
    ]
    columns = ("ID", "NAME", "REGION", "STATUS", "EXPIRES")
    output.stdout().print(output.simple_table(columns, rows))


@token_app.command("revoke")
def revoke_token(ctx: typer.Context, token_id: str = typer.Argument(..., help="Its id")) -> None:
    """Forget a join token: nobody can join with it any more."""
    context.client(ctx).revoke_join_token(token_id)
    output.stderr().print(f"Revoked join token {token_id}")


@app.command("join")
def join(
    url: str = typer.Argument(..., help="The control plane's URL, e.g. http://10.0.0.1:4280"),
    region: str = typer.Option(..., "--region", "-r", help="The region this host serves"),
    token: str | None = typer.Option(None, "--token", "-t", help="The join token"),
    token_file: Path | None = typer.Option(None, "--token-file", help="Read the token here"),
    host_id: str = typer.Option(
        socket.gethostname().split(".")[0], "--id", help="This host's id (default: hostname)"
    ),
    address: str | None = typer.Option(
        None, "--address", help="Where the others reach this host (default: the route to URL)"
    ),
    machine_subnet: str = typer.Option("10.200.0.0/24", help="Host-local IPv4 of machines"),
    cpus: int = typer.Option(os.cpu_count() or 1, help="CPUs this host offers"),
    memory_mb: int = typer.Option(4096, help="Memory this host offers, MB"),
    state_dir: Path = typer.Option(DEFAULT_STATE_DIR, help="Where images and machines live"),
    insecure_registry: list[str] = typer.Option(
        [], help="A registry reached over plain HTTP (the cluster's own, usually)"
    ),
    mesh_port: int = typer.Option(51820, help="UDP port of this host's WireGuard (0: no mesh)"),
    mesh_scope: str = typer.Option("ferry", help="1-6 characters naming WireGuard interfaces"),
    dns: bool = typer.Option(True, "--dns/--no-dns", help="Answer .internal on fdaa::3"),
    dns_upstream: str | None = typer.Option(None, help="ip:port resolving other names"),
    isolation: bool = typer.Option(
        True, "--isolation/--no-isolation", help="Keep organizations apart with nftables"
    ),
    protected: list[str] = typer.Option(
        [], help="CIDR machines never reach, e.g. the control plane's address; repeat"
    ),
    service: list[str] = typer.Option(
        [], help="ADDRESS:PORT/PROTO machines may reach all the same (the edge's); repeat"
    ),
    netns_prefix: str = typer.Option("ferry-", help="Prefix of the machines' namespaces"),
    cgroup_parent: str = typer.Option("ferry", help="cgroup parent of the machines"),
    start: bool = typer.Option(True, "--start/--no-start", help="Run the agent after joining"),
) -> None:
    """Make this server a host of the cluster at URL, then run its agent.

    A server that already joined (its state directory holds the host's files for
    the same --id) does not join again: it runs its agent. So the command is safe
    to repeat, e.g. as a service's start command."""
    if _joined_as(state_dir) == host_id:
        output.stderr().print(f"Already joined as host {host_id}: running its agent")
        if start:
            run_joined_agent(state_dir)
        return
    from ferry.agent.isolation_keeper import parse_service

    for item in service:
        parse_service(item)  # refused before the token is spent
    plain = _join_token(token, token_file)
    registration = {
        "id": host_id,
        "region": region,
        "address": address or _route_source(url),
        "cpus": cpus,
        "memory_mb": memory_mb,
        "machine_subnet": machine_subnet,
    }
    with FerryClient(url, token="") as client:
        host, credential = client.join_host(plain, registration)
    extra = {
        "insecure_registries": insecure_registry,
        "mesh_port": mesh_port,
        "mesh_scope": mesh_scope,
        "dns": dns,
        "dns_upstream": dns_upstream,
        "netns_prefix": netns_prefix,
        "cgroup_parent": cgroup_parent,
        "isolation": isolation,
        "protected": protected,
        "services": service,
    }
    write_host_files(state_dir, url, {**registration, **extra}, credential)
    output.stderr().print(
        f"Joined as host {host.id} in {host.region}; credential kept in {state_dir}/credential"
    )
    if start:
        run_joined_agent(state_dir)


def write_host_files(
    state_dir: Path, url: str, registration: dict[str, Any], credential: str
) -> None:
    """The credential (0600) and what the agent needs to start again after a reboot."""
    from ferry.cluster.credentials import write_secret_file

    write_secret_file(state_dir / "credential", credential)
    facts = {"api_url": url, **registration}
    (state_dir / HOST_FILE).write_text(json.dumps(facts, indent=1) + "\n")


@app.command("run")
def run(
    state_dir: Path = typer.Option(DEFAULT_STATE_DIR, help="The joined host's state directory"),
) -> None:
    """Run the agent of a host that joined with `ferry host join` (e.g. after a reboot)."""
    if _joined_as(state_dir) is None:
        raise ValidationError(
            f"{state_dir} holds no joined host",
            hint="join first with `ferry host join URL --region REGION`",
        )
    run_joined_agent(state_dir)


def _joined_as(state_dir: Path) -> str | None:
    """The id of the host whose files ``state_dir`` holds, if it joined."""
    try:
        facts = json.loads((state_dir / HOST_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not (state_dir / "credential").exists() or not isinstance(facts, dict):
        return None
    found = facts.get("id")
    return found if isinstance(found, str) else None


def run_joined_agent(state_dir: Path) -> None:
    """Run the agent of a joined host from its state directory (blocks)."""
    from ferry.agent.daemon import Agent, AgentSettings
    from ferry.agent.isolation_keeper import IsolationSettings
    from ferry.agent.private_net import PrivateNetSettings

    facts = json.loads((state_dir / HOST_FILE).read_text())
    token = (state_dir / "credential").read_text().strip()
    settings = AgentSettings(
        host_id=facts["id"],
        region=facts["region"],
        address=facts["address"],
        cpus=facts["cpus"],
        memory_mb=facts["memory_mb"],
        machine_subnet=facts["machine_subnet"],
        state_dir=state_dir,
        netns_prefix=facts.get("netns_prefix", "ferry-"),
        cgroup_parent=facts.get("cgroup_parent", "ferry"),
        api_url=facts["api_url"],
        token=token,
        insecure_registries=tuple(facts.get("insecure_registries", ())),
        private_net=PrivateNetSettings(
            mesh_endpoint=f"{facts['address']}:{facts['mesh_port']}"
            if facts.get("mesh_port")
            else None,
            mesh_scope=facts.get("mesh_scope", "ferry"),
            dns=bool(facts.get("dns", True)),
            dns_upstream=facts.get("dns_upstream"),
        ),
        isolation=IsolationSettings(
            enabled=bool(facts.get("isolation", True)),
            protected=tuple(facts.get("protected", ())),
            services=tuple(facts.get("services", ())),
        ),
    )
    Agent(settings).run()


def _join_token(token: str | None, token_file: Path | None) -> str:
    if token_file is not None:
        return token_file.read_text().strip()
    found = token or os.environ.get("FERRY_JOIN_TOKEN", "")
    if not found:
        raise ValidationError(
            "no join token given",
            hint="make one with `ferry host token create`, then pass it with --token, "
            "--token-file or $FERRY_JOIN_TOKEN",
        )
    return found.strip()


def _route_source(url: str) -> str:
    """The local address the kernel would use to reach ``url`` (no packet is sent)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValidationError(f"{url!r} is not a URL", hint="e.g. http://10.0.0.1:4280")
    family = socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((parts.hostname, parts.port or 80))
        return str(probe.getsockname()[0])
