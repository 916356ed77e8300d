"""`ferry region exec`: run a command as a client located in a region's network."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ferry.cluster.settings import ClusterSettings, default_home
from ferry.errors import ValidationError
from ferry.net.iproute import netns_exec_argv
from ferry.tls.cluster_certs import trust_environment

app = typer.Typer(no_args_is_help=True, help="Act from inside a region of the embedded cluster.")


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_in_region(
    region: Annotated[str, typer.Argument(help="Region code, e.g. ams.")],
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    home: Annotated[Path, typer.Option("--home", envvar="FERRY_HOME")] = default_home(),
) -> None:
    """Run COMMAND inside region REGION's network, e.g. `ferry region exec ams -- curl …`.

    The command trusts the cluster's CA (SSL_CERT_FILE, CURL_CA_BUNDLE,
    REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS), so `curl https://<app>.<domain>/`
    works as it is. The command replaces this process, so its exit code is ours.
    """
    if not command:
        raise ValidationError("no command given", hint="ferry region exec ams -- curl http://…")
    settings = ClusterSettings.load(home)
    netns = settings.plan.region(region).netns
    argv = netns_exec_argv(netns, command)
    os.execvpe(argv[0], argv, {**os.environ, **trust_environment(settings.home)})
