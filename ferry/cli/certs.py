"""`ferry certs add|list|show|check|remove`: an app's custom host names and their
certificates, as flyctl's verbs (docs/certificates.md).

The control plane orders each certificate from its ACME CA (Let's Encrypt, or
Pebble in the embedded cluster) and renews it; `check` asks again now and says
why a certificate is not ready. Nothing here ever shows a key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import typer

from ferry.cli import context, output
from ferry.client import FerryClient

app = typer.Typer(help="Custom host names of an app and their TLS certificates (ACME).")

_JSON_HELP = "Print the API answer as JSON"


def _when(value: Any) -> str:
    if not value:
        return "-"
    return output.ago(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _details(cert: dict[str, Any]) -> None:
    rows = [
        ("Hostname", str(cert["hostname"])),
        ("Status", str(cert["client_status"])),
        ("Configured", "yes" if cert["configured"] else "no"),
        ("Certificate authority", str(cert["certificate_authority"])),
        ("Expires", str(cert.get("expires_at") or "-")),
        ("DNS: point an A record at", ", ".join(cert["dns_requirements"].get("a", [])) or "-"),
        ("DNS-01 validation name", str(cert["dns_validation_hostname"])),
        ("Added", _when(cert.get("created_at"))),
    ]
    if cert.get("last_error"):
        rows.append(("Last error", str(cert["last_error"])))
    if cert.get("next_attempt_at"):
        rows.append(("Next attempt", str(cert["next_attempt_at"])))
    output.stdout().print(output.key_values(rows))


@app.command("add")
def add_certificate(
    ctx: typer.Context,
    hostname: str = typer.Argument(..., metavar="HOSTNAME", show_default=False),
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", "-j", help=_JSON_HELP),
) -> None:
    """Add a host name (www.example.com, or *.example.com by DNS-01) to the app."""
    name = context.resolve_app(app_name)
    cert = context.client(ctx).add_certificate(name, hostname)
    if as_json:
        output.print_json(cert)
        return
    edges = ", ".join(cert["dns_requirements"].get("a", [])) or "the cluster's edges"
    output.say(f"Added {cert['hostname']} to {name}; its certificate is being ordered.")
    if cert["hostname"].startswith("*."):
        output.say(
            f"Wildcards are validated by DNS-01: delegate {cert['dns_validation_hostname']} "
            "to the cluster's DNS."
        )
    else:
        output.say(f"Point an A record for {cert['hostname']} at {edges}.")
    output.say(f"See progress with `ferry certs check {cert['hostname']} -a {name}`.")


@app.command("list")
def list_certificates(
    ctx: typer.Context,
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", "-j", help=_JSON_HELP),
) -> None:
    """The app's host names, their status and expiry."""
    name = context.resolve_app(app_name)
    certs = context.client(ctx).list_certificates(name)
    if as_json:
        output.print_json(certs)
        return
    if not certs:
        output.say(f"{name} has no custom host names: `ferry certs add HOST -a {name}` adds one")
        return
    rows = [
        (c["hostname"], c["client_status"], str(c.get("expires_at") or "-"), _when(c["created_at"]))
        for c in certs
    ]
    output.stdout().print(output.simple_table(["HOSTNAME", "STATUS", "EXPIRES", "ADDED"], rows))


@app.command("show")
def show_certificate(
    ctx: typer.Context,
    hostname: str = typer.Argument(..., metavar="HOSTNAME", show_default=False),
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", "-j", help=_JSON_HELP),
) -> None:
    """A host name's certificate: status, issuer, expiry, DNS requirements, last error."""
    cert = _fetch(ctx, app_name, hostname, as_json, FerryClient.get_certificate)
    if cert is not None:
        _details(cert)


@app.command("check")
def check_certificate(
    ctx: typer.Context,
    hostname: str = typer.Argument(..., metavar="HOSTNAME", show_default=False),
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", "-j", help=_JSON_HELP),
) -> None:
    """Re-check DNS and the order now, and say why the certificate is (not) ready."""
    cert = _fetch(ctx, app_name, hostname, as_json, FerryClient.check_certificate)
    if cert is None:
        return
    _details(cert)
    check = cert.get("check") or {}
    if check.get("resolves_to"):
        output.say(f"{cert['hostname']} resolves to {', '.join(check['resolves_to'])}")
    output.say(str(check.get("reason", "")))


def _fetch(
    ctx: typer.Context,
    app_name: str | None,
    hostname: str,
    as_json: bool,
    call: Callable[[FerryClient, str, str], dict[str, Any]],
) -> dict[str, Any] | None:
    """One host name's certificate by ``call``; printed as JSON (and None returned) with
    ``--json``."""
    cert = call(context.client(ctx), context.resolve_app(app_name), hostname)
    if as_json:
        output.print_json(cert)
        return None
    return cert


@app.command("remove")
def remove_certificate(
    ctx: typer.Context,
    hostname: str = typer.Argument(..., metavar="HOSTNAME", show_default=False),
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
) -> None:
    """Remove the host name and its certificate; the edges stop serving it."""
    name = context.resolve_app(app_name)
    context.client(ctx).remove_certificate(name, hostname)
    output.say(f"Removed {hostname} from {name}")
