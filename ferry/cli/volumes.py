"""`ferry volumes create|list|show|extend|destroy|fork` and `ferry volumes snapshots
list|create`: an app's volumes, as flyctl's verbs (docs/volumes.md).

A volume is an ext4 filesystem of a fixed size on one host of its region; a
machine mounts it with ``[[mounts]]`` in fly.toml or ``config.mounts``. Only
``destroy`` deletes one, and not while a machine uses it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer

from ferry.cli import context, output
from ferry.model.volume import Volume

app = typer.Typer(help="Persistent volumes of an app: ext4 filesystems on its hosts.")
snapshots_app = typer.Typer(help="Snapshots of a volume: consistent copies on its host.")
app.add_typer(snapshots_app, name="snapshots")

_JSON_HELP = "Print the API answer as JSON"
_APP = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP)
_AS_JSON = typer.Option(False, "--json", "-j", help=_JSON_HELP)
_VOLUME = typer.Argument(..., metavar="VOLUME_ID", show_default=False)


def _when(moment: datetime) -> str:
    return output.ago(moment)


def _details(v: Volume) -> None:
    rows = [
        ("ID", v.id),
        ("Name", v.name),
        ("App", v.app_name),
        ("State", v.state.value),
        ("Region", v.region),
        ("Zone (host)", v.zone),
        ("Size GB", str(v.size_gb)),
        ("Encrypted", "true" if v.encrypted else "false"),
        ("Attached machine", v.attached_machine_id or "-"),
        ("Used", f"{v.bytes_used / 1e6:.1f} MB of {v.bytes_total / 1e6:.1f} MB"),
        ("Snapshot retention", f"{v.snapshot_retention} days"),
        ("Created", _when(v.created_at)),
    ]
    if v.snapshot_id:
        rows.append(("Restored from", v.snapshot_id))
    if v.error:
        rows.append(("Error", v.error))
    output.stdout().print(output.key_values(rows))


@app.command("create")
def create_volume(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", show_default=False),
    region: str | None = typer.Option(None, "--region", "-r", help="The target region"),
    size: int = typer.Option(1, "--size", "-s", help="Size in GB (at least 1)"),
    count: int = typer.Option(1, "--count", "-n", help="How many volumes to create"),
    snapshot_id: str | None = typer.Option(
        None, "--snapshot-id", help="Create the volume from this snapshot (on its host)"
    ),
    snapshot_retention: int = typer.Option(5, "--snapshot-retention", help="Days (1-60)"),
    require_unique_zone: bool = typer.Option(
        True,
        "--require-unique-zone/--no-require-unique-zone",
        help="Prefer a host without a volume of this name",
    ),
    no_encryption: bool = typer.Option(
        False, "--no-encryption", help="Accepted: Ferry's volumes are not encrypted"
    ),
    app_name: str | None = _APP,
    as_json: bool = _AS_JSON,
) -> None:
    """Create a volume of SIZE GB in a region (one host of it holds the volume)."""
    name_of_app = context.resolve_app(app_name)
    client = context.client(ctx)
    body: dict[str, Any] = {
        "name": name,
        "region": region,
        "size_gb": size,
        "snapshot_retention": snapshot_retention,
        "require_unique_zone": require_unique_zone,
        "encrypted": False,
    }
    if snapshot_id:
        body["snapshot_id"] = snapshot_id
    made = [client.create_volume(name_of_app, body) for _ in range(max(count, 1))]
    if as_json:
        output.print_json(made if count > 1 else made[0])
        return
    for volume in made:
        _details(volume)
    output.say(f"See it with `ferry volumes list -a {name_of_app}`; mount it with [[mounts]].")


@app.command("list")
def list_volumes(ctx: typer.Context, app_name: str | None = _APP, as_json: bool = _AS_JSON) -> None:
    """The app's volumes (destroyed ones left out)."""
    name = context.resolve_app(app_name)
    volumes = context.client(ctx).list_volumes(name)
    if as_json:
        output.print_json(volumes)
        return
    if not volumes:
        output.say(f"{name} has no volumes: `ferry volumes create NAME -r REGION -a {name}`")
        return
    columns = ["ID", "STATE", "NAME", "SIZE", "REGION", "ZONE", "ENCRYPTED", "ATTACHED VM"]
    rows = [
        (
            v.id,
            v.state.value,
            v.name,
            f"{v.size_gb}GB",
            v.region,
            v.zone,
            "false",
            v.attached_machine_id or "",
        )
        for v in volumes
    ]
    output.stdout().print(
        output.simple_table(
            [*columns, "CREATED AT"],
            [(*row, _when(v.created_at)) for row, v in zip(rows, volumes, strict=True)],
        )
    )


@app.command("show")
def show_volume(
    ctx: typer.Context,
    volume_id: str = _VOLUME,
    app_name: str | None = _APP,
    as_json: bool = _AS_JSON,
) -> None:
    """One volume: state, host, size, use, the machine that mounts it."""
    volume = context.client(ctx).get_volume(context.resolve_app(app_name), volume_id)
    if as_json:
        output.print_json(volume)
        return
    _details(volume)


@app.command("extend")
def extend_volume(
    ctx: typer.Context,
    volume_id: str = _VOLUME,
    size: int = typer.Option(..., "--size", "-s", help="The new size in GB (larger)"),
    app_name: str | None = _APP,
    as_json: bool = _AS_JSON,
) -> None:
    """Grow a volume to SIZE GB (volumes never shrink)."""
    grown = context.client(ctx).extend_volume(context.resolve_app(app_name), volume_id, size)
    if as_json:
        output.print_json(grown)
        return
    output.say(f"Volume {volume_id} is being extended to {grown.volume.size_gb} GB.")
    if grown.needs_restart:
        machine = grown.volume.attached_machine_id
        output.say(
            f"Its machine {machine} sees the new size after a restart: "
            f"`ferry machine restart {machine}`."
        )


@app.command("destroy")
def destroy_volume(
    ctx: typer.Context,
    volume_id: str = _VOLUME,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
    app_name: str | None = _APP,
) -> None:
    """Delete a volume and its data for good (refused while a machine uses it)."""
    name = context.resolve_app(app_name)
    client = context.client(ctx)
    volume = client.get_volume(name, volume_id)
    if not yes and not typer.confirm(
        f"Destroy volume {volume_id} ({volume.name}, {volume.size_gb} GB) and its data? "
        "This cannot be undone",
        default=False,
    ):
        raise typer.Exit(1)
    client.destroy_volume(name, volume_id)
    output.say(f"Destroyed volume {volume_id} ({volume.name})")


@app.command("fork")
def fork_volume(
    ctx: typer.Context,
    volume_id: str = _VOLUME,
    name: str | None = typer.Option(None, "--name", help="Name of the copy (default: the same)"),
    region: str | None = typer.Option(None, "--region", "-r", help="Region of the copy"),
    app_name: str | None = _APP,
    as_json: bool = _AS_JSON,
) -> None:
    """A new volume with a consistent copy of VOLUME_ID's data, here or in another region
    (the copy is `hydrating` until it has reached its host)."""
    app_of = context.resolve_app(app_name)
    client = context.client(ctx)
    source = client.get_volume(app_of, volume_id)
    body: dict[str, Any] = {
        "name": name or source.name,
        "region": region or source.region,
        "size_gb": source.size_gb,
        "source_volume_id": source.id,
    }
    copy = client.create_volume(app_of, body)
    if as_json:
        output.print_json(copy)
        return
    _details(copy)


@snapshots_app.command("list")
def list_snapshots(
    ctx: typer.Context,
    volume_id: str = _VOLUME,
    app_name: str | None = _APP,
    as_json: bool = _AS_JSON,
) -> None:
    """A volume's snapshots."""
    found = context.client(ctx).list_volume_snapshots(context.resolve_app(app_name), volume_id)
    if as_json:
        output.print_json(found)
        return
    if not found:
        output.say(f"volume {volume_id} has no snapshots: `ferry volumes snapshots create`")
        return
    rows = [
        (
            s.id,
            s.status.value,
            f"{s.size / 1e6:.1f} MB",
            _when(s.created_at),
            f"{s.retention_days}d",
        )
        for s in found
    ]
    output.stdout().print(
        output.simple_table(["ID", "STATUS", "SIZE", "CREATED AT", "RETAINED"], rows)
    )


@snapshots_app.command("create")
def create_snapshot(
    ctx: typer.Context,
    volume_id: str = _VOLUME,
    app_name: str | None = _APP,
    as_json: bool = _AS_JSON,
) -> None:
    """Take a consistent snapshot of the volume now (it keeps serving its machine)."""
    made = context.client(ctx).create_volume_snapshot(context.resolve_app(app_name), volume_id)
    if as_json:
        output.print_json(made)
        return
    output.say(f"Snapshot {made.id} of {volume_id} is being made.")
    output.say(f"See it with `ferry volumes snapshots list {volume_id}`.")
