"""`ferry secrets set|import|list|unset|deploy`: an app's secrets, as flyctl's verbs; and
`ferry secrets rotate-key`, the operator's re-encryption under a new key.

Values are read from the arguments (`set`) or stdin (`import`, which keeps them
out of `ps` and shell history) and are never printed: answers show names,
digests and dates. Unless `--stage`, a change rolls the app's machines on the
server; without `--detach` the command waits for the roll and fails if it fails.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ferry.cli import context, output
from ferry.errors import FerryError, ValidationError
from ferry.model.secrets import AppSecrets
from ferry.secrets import check_secret_name, parse_assignments, parse_import

app = typer.Typer(help="An app's secrets: environment variables stored encrypted, never shown.")

_STAGE_HELP = "Store only; machines get the change at `ferry secrets deploy` (or their next start)"
_DETACH_HELP = "Return at once instead of waiting for the machines to restart"


def _report(name: str, answer: AppSecrets, *, staged: bool, detached: bool) -> None:
    """Say what happened to the machines; exit 1 when the roll failed."""
    rollout = answer.rollout
    if staged or rollout is None:
        output.say(f"Secrets of {name} are staged: `ferry secrets deploy -a {name}` rolls them out")
        return
    if detached or rollout.state == "running":
        output.say(f"Rolling {rollout.total} machine(s) of {name} onto the new secrets (detached)")
        return
    if rollout.state == "complete":
        output.say(
            f"{rollout.total} machine(s) of {name} run with the new secrets "
            f"({rollout.seconds:.1f} s)"
        )
        return
    raise _RollFailed(
        f"the roll stopped after {rollout.done} of {rollout.total} machine(s): {rollout.reason}"
    )


class _RollFailed(FerryError):
    def __init__(self, message: str) -> None:
        super().__init__(
            message, hint="the secrets stay staged; fix the machine, then `ferry secrets deploy`"
        )


@app.command("set")
def set_secrets(
    ctx: typer.Context,
    assignments: list[str] = typer.Argument(..., metavar="NAME=VALUE...", show_default=False),
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    stage: bool = typer.Option(False, "--stage", help=_STAGE_HELP),
    detach: bool = typer.Option(False, "--detach", help=_DETACH_HELP),
) -> None:
    """Set one or more secrets; then restart the app's machines with them."""
    values = parse_assignments(assignments)
    name = context.resolve_app(app_name)
    answer = context.client(ctx).set_secrets(name, values, stage=stage, detach=detach)
    _report(name, answer, staged=stage, detached=detach)


@app.command("import")
def import_secrets(
    ctx: typer.Context,
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    stage: bool = typer.Option(False, "--stage", help=_STAGE_HELP),
    detach: bool = typer.Option(False, "--detach", help=_DETACH_HELP),
) -> None:
    """Set secrets read from stdin: NAME=VALUE lines, multi-line values in \"\"\"…\"\"\"."""
    values = parse_import(sys.stdin.read())
    if not values:
        raise ValidationError(
            "no secrets on stdin",
            hint="pipe NAME=VALUE lines in, e.g. `ferry secrets import < .env`",
        )
    name = context.resolve_app(app_name)
    answer = context.client(ctx).set_secrets(name, values, stage=stage, detach=detach)
    _report(name, answer, staged=stage, detached=detach)


@app.command("unset")
def unset_secrets(
    ctx: typer.Context,
    names: list[str] = typer.Argument(..., metavar="NAME...", show_default=False),
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    stage: bool = typer.Option(False, "--stage", help=_STAGE_HELP),
    detach: bool = typer.Option(False, "--detach", help=_DETACH_HELP),
) -> None:
    """Remove secrets; then restart the app's machines without them."""
    for secret in names:
        check_secret_name(secret)
    name = context.resolve_app(app_name)
    answer = context.client(ctx).unset_secrets(name, names, stage=stage, detach=detach)
    _report(name, answer, staged=stage, detached=detach)


@app.command("deploy")
def deploy_secrets(
    ctx: typer.Context,
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    detach: bool = typer.Option(False, "--detach", help=_DETACH_HELP),
) -> None:
    """Restart the app's machines with its staged secrets."""
    name = context.resolve_app(app_name)
    answer = context.client(ctx).deploy_secrets(name, detach=detach)
    _report(name, answer, staged=False, detached=detach)


@app.command("list")
def list_secrets(
    ctx: typer.Context,
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the API answer as JSON"),
) -> None:
    """Names, digests, status (deployed or staged) and dates; never values."""
    name = context.resolve_app(app_name)
    answer = context.client(ctx).list_secrets(name)
    if as_json:
        output.print_json(answer)
        return
    if not answer.secrets:
        output.say(f"{name} has no secrets: `ferry secrets set NAME=VALUE -a {name}` adds one")
        return
    rows = [
        (s.name, s.digest, "Staged" if s.staged else "Deployed", output.ago(s.updated_at))
        for s in answer.secrets
    ]
    output.stdout().print(output.simple_table(["NAME", "DIGEST", "STATUS", "UPDATED"], rows))


@app.command("rotate-key")
def rotate_key(
    home: Path = typer.Option(
        Path(os.environ.get("FERRY_HOME", "/var/lib/ferry")), help="State directory (FERRY_HOME)."
    ),
    store_url: str | None = typer.Option(None, help="Store URL; default sqlite in FERRY_HOME."),
    new_key_file: Path | None = typer.Option(
        None, help="The new key (base64 of 32 bytes); created with a random key if missing."
    ),
) -> None:
    """Operator: re-encrypt every app secret under a new key (stop the control plane first)."""
    from ferry.server.secrets_rotation import rotate_secrets_key

    done = rotate_secrets_key(home, store_url=store_url, new_key_file=new_key_file)
    output.say(
        f"Re-encrypted {done.resealed} secret(s): key {done.old_key_id} -> {done.new_key_id}"
    )
    if done.key_location.startswith("$"):
        output.say(f"Set {done.key_location[1:]} to the contents of {new_key_file} before starting")
    else:
        output.say(f"{done.key_location} now holds the new key: back it up")
