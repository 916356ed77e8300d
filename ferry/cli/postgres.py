"""`ferry postgres`: Postgres clusters on Ferry: `image` here, the cluster verbs in
``ferry.cli.postgres_cluster``."""

from __future__ import annotations

from pathlib import Path

import typer

from ferry.cli import context, output, postgres_cluster
from ferry.deploy.images import registry_address
from ferry.postgres.image import default_cache_dir, ensure_image, publish_image

app = typer.Typer(help="Postgres clusters: PostgreSQL 15 managed by Patroni, on etcd.")
postgres_cluster.register(app)


@app.command("image")
def image_command(
    ctx: typer.Context,
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Build the Debian base again even if it is cached"
    ),
    push: bool = typer.Option(
        True, "--push/--no-push", help="Copy the image into the cluster's registry"
    ),
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        envvar="FERRY_POSTGRES_IMAGE_CACHE",
        help="Where the built image is kept (default $FERRY_CACHE_DIR/postgres, "
        "else /var/cache/ferry/postgres)",
    ),
) -> None:
    """Build the Postgres image once (cached), push it, and print its reference by digest.

    The first build installs Debian's postgresql-15, patroni and etcd-server with
    mmdebstrap (needs root and the Debian mirror, about a minute); later calls
    reuse the cache and take about a second.
    """
    tools = context.state(ctx).image_tools
    built = ensure_image(
        cache_dir or default_cache_dir(),
        rebuild=rebuild,
        runner=tools,
        say=lambda line: output.say(line, style="dim"),
    )
    how = "built from Debian packages" if built.built_base else "from the cache"
    output.say(f"Image {built.tag} ({how}, {built.seconds:.1f} s): {built.oci_reference}", "dim")
    if not push:
        output.say(f"{built.oci_reference}@{built.digest}")
        return
    registry = registry_address(context.client(ctx).platform_info())
    output.say(publish_image(built, registry, runner=tools))
