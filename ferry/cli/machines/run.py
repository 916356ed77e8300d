"""`ferry machine run IMAGE [CMD...]`: create one machine from flags, without a fly.toml."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

import pydantic
import typer

from ferry.cli import context, output
from ferry.deploy.images import classify_image, publish_image, registry_address
from ferry.errors import ValidationError
from ferry.model import GuestConfig, MachineConfig, ServiceConfig, ServicePort

RestartChoice = Literal["no", "always", "on-failure"]


def parse_env(pairs: list[str]) -> dict[str, str]:
    """``["K=V", …]`` → dict; raises ``ValidationError`` naming a pair without ``=``."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"invalid --env {pair!r}", hint="write it as NAME=VALUE")
        env[key] = value
    return env


def parse_port(text: str) -> ServiceConfig:
    """``8080`` → the app listens on 8080, public on 80 (http; 443 with TLS once TLS exists);
    ``80:8080`` → public port 80 to internal 8080. Raises ``ValidationError``."""
    public, sep, internal = text.partition(":")
    try:
        if not sep:
            port = int(public)
            ports = [ServicePort(port=80, handlers=["http"])]
            return ServiceConfig(internal_port=port, ports=ports)
        return ServiceConfig(
            internal_port=int(internal), ports=[ServicePort(port=int(public), handlers=["http"])]
        )
    except (ValueError, pydantic.ValidationError) as exc:
        raise ValidationError(
            f"invalid --port {text!r}", hint="give a port like 8080 or PUBLIC:INTERNAL like 80:8080"
        ) from exc


def build_machine_config(
    image: str,
    command: list[str],
    *,
    env: dict[str, str],
    size: str | None,
    memory_mb: int | None,
    cpus: int | None,
    restart: RestartChoice | None,
    port: str | None,
) -> MachineConfig:
    """The config `machine run` sends. Pure; raises ``ValidationError`` naming the bad flag."""
    try:
        guest: GuestConfig | None = None
        if size is not None or memory_mb is not None or cpus is not None:
            guest = GuestConfig.from_size(size or "shared-cpu-1x")
            changes = {"memory_mb": memory_mb, "cpus": cpus}
            guest = GuestConfig.model_validate(
                guest.model_dump() | {k: v for k, v in changes.items() if v is not None}
            )
        data: dict[str, object] = {"image": image, "env": env, "guest": guest}
        if command:
            data["init"] = {"cmd": command}
        if restart is not None:
            data["restart"] = {"policy": restart}
        if port is not None:
            data["services"] = [parse_port(port)]
        return MachineConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise ValidationError(
            f"invalid machine setting {where}: {first['msg']}",
            hint="check --vm-memory (64 MB or more) and --vm-cpus (1-64)",
        ) from exc


def run(
    ctx: typer.Context,
    image: str = typer.Argument(
        ..., metavar="IMAGE", help="Image: a registry reference, OCI layout dir or .tar"
    ),
    command: list[str] | None = typer.Argument(None, metavar="[CMD]...", help="Command to run"),
    app: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    region: str | None = typer.Option(None, "--region", "-r", help="Region code, e.g. ams"),
    name: str | None = typer.Option(None, "--name", "-n", help="Machine name"),
    env: list[str] = typer.Option([], "--env", "-e", help="NAME=VALUE, repeatable"),
    vm_size: str | None = typer.Option(None, "--vm-size", help="Size preset, e.g. shared-cpu-1x"),
    vm_memory: int | None = typer.Option(None, "--vm-memory", help="Memory in MB"),
    vm_cpus: int | None = typer.Option(None, "--vm-cpus", help="Number of CPUs"),
    restart: str | None = typer.Option(None, "--restart", help="no | always | on-failure"),
    port: str | None = typer.Option(None, "--port", "-p", help="Internal port, or PUBLIC:INTERNAL"),
) -> None:
    """Run IMAGE as a new machine of the app."""
    if restart is not None and restart not in ("no", "always", "on-failure"):
        raise ValidationError(
            f"invalid --restart {restart!r}", hint="use one of: no, always, on-failure"
        )
    app_name = context.resolve_app(app)
    config = build_machine_config(
        image,
        command or [],
        env=parse_env(env),
        size=vm_size,
        memory_mb=vm_memory,
        cpus=vm_cpus,
        restart=cast(RestartChoice | None, restart),
        port=port,
    )
    client = context.client(ctx)
    registry = registry_address(client.platform_info())
    source = classify_image(image, Path.cwd(), registry)
    pinned = publish_image(
        source,
        app=app_name,
        registry=registry,
        runner=context.state(ctx).image_tools,
        now=datetime.now(UTC),
        say=output.say,
    )
    config = config.model_copy(update={"image": pinned})
    machine = client.create_machine(app_name, config, region=region, name=name)
    output.say(
        f"Machine {machine.id} ({machine.name}) created in {machine.region} "
        f"on {machine.host_id}, address {machine.private_ip}",
        style="green",
    )
