"""`ferry postgres create|status|connect|attach|detach|failover|destroy|follow` (docs/postgres.md).

Registered on the ``ferry postgres`` group by ``ferry.cli.postgres``. The work is in
``ferry.postgres.manage`` and ``ferry.postgres.attach``; these functions read options,
publish the image (create) and print.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time

import typer

from ferry.cli import context, output
from ferry.cli.ssh_terminal import run_console, terminal_size
from ferry.deploy.images import registry_address
from ferry.postgres import manage, plan
from ferry.postgres.attach import attach_app, detach_app
from ferry.postgres.image import default_cache_dir, ensure_image, publish_image
from ferry.postgres.patroni_config import POSTGRES_PORT, PROXY_PORT

_DB = typer.Argument(..., metavar="DB", help="The Postgres app's name", show_default=False)
_APP = typer.Option(..., "--app", "-a", help="The app to attach or detach")


def register(app: typer.Typer) -> None:
    """Add the cluster verbs to ``ferry postgres``."""
    app.command("create")(create_command)
    app.command("status")(status_command)
    app.command("connect")(connect_command)
    app.command("attach")(attach_command)
    app.command("detach")(detach_command)
    app.command("failover")(failover_command)
    app.command("destroy")(destroy_command)
    app.command("follow")(follow_command)


def create_command(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", "-n", help="The database's app name"),
    region: str = typer.Option(..., "--region", "-r", help="The primary's region"),
    replicas: str = typer.Option(
        "", "--replicas", help="Comma-separated regions of replicas, e.g. iad,sin"
    ),
    volume_size: int = typer.Option(1, "--volume-size", help="GB of each member's volume"),
    vm_size: str | None = typer.Option(
        None, "--vm-size", help="Machine size preset (default: 1 shared CPU, 512 MB)"
    ),
    sync: bool = typer.Option(False, "--sync", help="Synchronous replication (Patroni)"),
    show_credentials: bool = typer.Option(
        False, "--show-credentials", help="Print the postgres user's password (only now)"
    ),
) -> None:
    """Create a Postgres cluster: a primary and replicas, each a machine on its own volume."""
    request = plan.CreateRequest(
        name=name,
        region=region,
        replicas=tuple(r.strip() for r in replicas.split(",") if r.strip()),
        volume_size_gb=volume_size,
        vm_size=vm_size,
        sync=sync,
    )
    client = context.client(ctx)
    plan.validate_create(request, [r.code for r in client.regions()])  # before the image
    tools = context.state(ctx).image_tools
    built = ensure_image(default_cache_dir(), runner=tools, say=lambda s: output.say(s, "dim"))
    image = publish_image(built, registry_address(client.platform_info()), runner=tools)
    output.say(f"Image {image}", "dim")
    made = manage.create_cluster(
        client, request, image, say=lambda line: output.say(line, style="dim")
    )
    output.say(f"Postgres cluster {made.name} is ready ({made.seconds:.1f} s)")
    password = made.operator_password if show_credentials else "(hidden: --show-credentials)"
    host = f"{made.regions[0]}.{made.name}.internal"
    output.stdout().print(
        output.key_values(
            [
                ("Username", "postgres"),
                ("Password", password),
                ("Hostname", f"{made.name}.internal"),
                ("Primary", f"{host} (region {made.regions[0]})"),
                ("Proxy port", f"{PROXY_PORT} (any member: forwards to the primary)"),
                ("Postgres port", f"{POSTGRES_PORT} (the member itself)"),
                ("Members", ", ".join(f"{m.id} ({m.region})" for m in made.machines)),
            ]
        )
    )
    if show_credentials:
        output.say("Save the password now: Ferry will not show it again.")
    output.say(f"Give an app its own database: `ferry postgres attach {made.name} -a APP`")


def status_command(
    ctx: typer.Context,
    db: str = _DB,
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the members as JSON"),
) -> None:
    """Members of the cluster: role, state, timeline, replication lag (from Patroni; every
    member is asked, the freshest answer shown)."""
    client = context.client(ctx)
    rows = manage.cluster_view_of_all(client, db)
    regions = {m.id: m.region for m in manage.members_of(client, db)}
    if as_json:
        output.print_json(
            [{**dataclasses.asdict(r), "region": regions.get(r.name, "")} for r in rows]
        )
        return
    table = [
        (
            r.name,
            regions.get(r.name, "?"),
            r.role,
            r.state,
            str(r.timeline or "-"),
            "-" if r.lag_bytes is None else f"{r.lag_bytes} B",
        )
        for r in rows
    ]
    cols = ["MEMBER", "REGION", "ROLE", "STATE", "TIMELINE", "LAG"]
    output.stdout().print(output.simple_table(cols, table))


def connect_command(
    ctx: typer.Context,
    db: str = _DB,
    command: str | None = typer.Option(
        None, "--command", "-c", help="Run this SQL on the primary, print its output and exit"
    ),
    database: str = typer.Option("postgres", "--database", "-d", help="The database"),
) -> None:
    """psql on the primary (as the superuser): interactive, or one --command for scripts."""
    client = context.client(ctx)
    primary = manage.find_primary(client, db)
    argv = manage.psql_argv("-d", database)
    if command is None:
        size = terminal_size()
        url, headers = client.console_address(
            db, primary.id, cols=size.columns, rows=size.lines, command=shlex.join(argv)
        )
        raise typer.Exit(run_console(url, headers))
    answer = client.exec_machine(db, primary.id, argv, timeout=60, stdin=command + "\n")
    sys.stdout.write(answer.stdout)
    sys.stderr.write(answer.stderr)
    sys.stdout.flush()
    raise typer.Exit(answer.exit_code)


def attach_command(
    ctx: typer.Context,
    db: str = _DB,
    app_name: str = _APP,
    database: str | None = typer.Option(
        None, "--database-name", help="The database to make (default: the app's name)"
    ),
) -> None:
    """Make a database and user for APP on DB and set APP's DATABASE_URL secret."""
    made = attach_app(context.client(ctx), db, app_name, database)
    output.say(
        f"Attached {made.app}: database {made.names.database}, user {made.names.user};"
        f" DATABASE_URL=postgres://{made.names.user}:…@{made.host}:{PROXY_PORT}/"
        f"{made.names.database} set as its secret"
    )


def detach_command(ctx: typer.Context, db: str = _DB, app_name: str = _APP) -> None:
    """Revoke APP's login on DB and unset its DATABASE_URL (its database stays)."""
    detach_app(context.client(ctx), db, app_name)
    output.say(f"Detached {app_name} from {db}: login revoked, DATABASE_URL unset")


def failover_command(
    ctx: typer.Context,
    db: str = _DB,
    region: str | None = typer.Option(
        None, "--region", "-r", help="Move the primary to a replica in this region"
    ),
) -> None:
    """Move the primary to a healthy replica (Patroni's switchover); 5432 follows it."""
    client = context.client(ctx)
    started = time.monotonic()
    old, new = manage.switchover(client, db, region)
    regions = {m.id: m.region for m in manage.members_of(client, db)}
    output.say(
        f"Primary of {db} moved from {old.name} ({regions.get(old.name, '?')}) to {new.name}"
        f" ({regions.get(new.name, '?')}) in {time.monotonic() - started:.1f} s"
    )


def destroy_command(
    ctx: typer.Context,
    db: str = _DB,
    force: bool = typer.Option(False, "--force", help="Destroy even while apps are attached"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
) -> None:
    """Destroy the cluster: its machines, its volumes (all data) and its app."""
    if not yes:
        typer.confirm(f"Destroy {db} and all its data?", abort=True)
    manage.destroy_cluster(context.client(ctx), db, force=force)
    output.say(f"Destroyed {db}: machines, volumes and app")


def follow_command(
    ctx: typer.Context,
    app_name: str = typer.Option(..., "--app", "-a", help="The app whose [postgres] to show"),
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the API's answer as JSON"),
) -> None:
    """The app's [postgres] policy and what the follow loop last saw and did for it."""
    answer = context.client(ctx).follow_status(app_name)
    if as_json:
        output.print_json(answer)
        return
    policy = answer.get("policy")
    if not policy:
        output.say(f"{app_name} has no [postgres] section: its database's replicas stay as made")
        return
    out_after, in_after = policy.get("scale_out_after"), policy.get("scale_in_after")
    output.say(
        f"{app_name} uses {policy.get('database')}: replicas {policy.get('replicas')},"
        f" at least {policy.get('min_replicas')}, scale out after {out_after:g} s,"
        f" scale in after {in_after:g} s"
    )
    if answer.get("last_reason"):
        output.say(f"Last check ({answer.get('checked_at', '?')}): {answer['last_reason']}")
    running = answer.get("app_running_since") or {}
    if running:
        since = ", ".join(f"{region} since {at}" for region, at in sorted(running.items()))
        output.say(f"The app runs in {since}")
    rows = [
        (
            str(a.get("at", "")),
            str(a.get("kind", "")),
            str(a.get("region", "")),
            str(a.get("machine_id") or "-"),
            str(a.get("result", "")),
            str(a.get("reason", "")),
        )
        for a in answer.get("actions") or []
    ]
    if rows:
        cols = ["AT", "ACTION", "REGION", "MACHINE", "RESULT", "REASON"]
        output.stdout().print(output.simple_table(cols, rows))
    else:
        output.say("No replica added or removed yet")
