"""`ferry wireguard create|list|remove`: a developer's machine on an organization's 6PN.

As Fly's `fly wireguard create [ORG] [REGION] [NAME] [FILE]`, prompt-free:
ORG defaults to the caller's only organization, REGION to the first region
with a gateway (the control plane picks), NAME to `peer-<6 hex>`, FILE to
stdout. The key pair is made HERE (X25519, `cryptography`); only the public
key goes to the control plane. The private key is written into the
`wg-quick` config only: the file is created 0600 and never overwritten, and
on stdout it goes nowhere else.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ferry.cli import context, output
from ferry.cli.orgs import JSON_HELP, timestamp
from ferry.client import FerryClient
from ferry.errors import ConflictError, ValidationError
from ferry.model.wireguard import WireGuardPeer

app = typer.Typer(
    no_args_is_help=True, help="WireGuard peers: your machine on an organization's private network."
)

KEEPALIVE = 15


def key_pair() -> tuple[str, str]:
    """A new WireGuard key pair, (private, public), base64 as `wg genkey | wg pubkey`."""
    private = X25519PrivateKey.generate()
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode(), base64.b64encode(public).decode()


def wg_quick_config(private_key: str, peer: WireGuardPeer) -> str:
    """The `wg-quick` config of ``peer`` (pure): its address in its /120, the
    organization's resolver, and the gateway routing the organization's /48."""
    prefixlen = peer.prefix.rpartition("/")[2]
    return (
        f"# Ferry WireGuard peer {peer.name} of {peer.org_slug}, via {peer.region}\n"
        "[Interface]\n"
        f"PrivateKey = {private_key}\n"
        f"Address = {peer.address}/{prefixlen}\n"
        f"DNS = {peer.dns}\n"
        "\n"
        "[Peer]\n"
        f"PublicKey = {peer.gateway_public_key}\n"
        f"AllowedIPs = {peer.org_prefix}\n"
        f"Endpoint = {peer.gateway_endpoint}\n"
        f"PersistentKeepalive = {KEEPALIVE}\n"
    )


def only_org(client: FerryClient) -> str:
    """The caller's organization when it has exactly one; else say how to name one."""
    slugs = sorted(org.slug for org in client.list_orgs())
    if len(slugs) == 1:
        return slugs[0]
    raise ValidationError(
        "name the organization: you belong to "
        + (", ".join(slugs) if slugs else "no organization"),
        hint="e.g. `ferry wireguard create ORG`",
    )


def _create_file(path: Path) -> int:
    """A new file, 0600 whatever the umask; refuses to replace one (it may hold a key)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConflictError(
            f"{path} exists", hint="pick another file: it may hold another peer's key"
        ) from None
    except OSError as exc:
        raise ValidationError(f"cannot create {path}: {exc.strerror}") from None
    os.fchmod(fd, 0o600)
    return fd


@app.command("create")
def create(
    ctx: typer.Context,
    org: str | None = typer.Argument(None, help="Organization (default: your only one)"),
    region: str | None = typer.Argument(None, help="Region of the gateway (default: the first)"),
    name: str | None = typer.Argument(None, help="Peer name (default: peer-<random>)"),
    file: Path | None = typer.Argument(
        None, help="Write the wg-quick config here (default: stdout)"
    ),
) -> None:
    """Add a WireGuard peer and write its wg-quick config (with its private key)."""
    client = context.client(ctx)
    slug = org or only_org(client)
    peer_name = name or f"peer-{secrets.token_hex(3)}"
    fd = _create_file(file) if file is not None else None
    try:
        private, public = key_pair()
        peer = client.create_wireguard_peer(slug, peer_name, public, region)
    except BaseException:
        if fd is not None and file is not None:
            os.close(fd)
            with contextlib.suppress(OSError):
                file.unlink()
        raise
    config = wg_quick_config(private, peer)
    if fd is None:
        typer.echo(config, nl=False)
    else:
        with os.fdopen(fd, "w") as out:
            out.write(config)
    where = f" to {file}" if file is not None else ""
    output.stderr().print(
        f"Peer {peer.name} of {peer.org_slug} via {peer.region}: {peer.address}; "
        f"config written{where}. Bring it up with `wg-quick up <file>`."
    )


@app.command("list")
def list_peers(
    ctx: typer.Context,
    org: str | None = typer.Argument(None, help="Organization (default: your only one)"),
    as_json: bool = typer.Option(False, "--json", "-j", help=JSON_HELP),
) -> None:
    """The organization's WireGuard peers."""
    client = context.client(ctx)
    found = client.list_wireguard_peers(org or only_org(client))
    if as_json:
        output.print_json(found)
        return
    rows: list[Any] = [
        (
            p.name,
            p.region,
            p.address,
            p.gateway_endpoint or "(gateway down)",
            timestamp(p.created_at),
        )
        for p in found
    ]
    columns = ("NAME", "REGION", "ADDRESS", "GATEWAY", "CREATED")
    output.stdout().print(output.simple_table(columns, rows))


@app.command("remove")
def remove(
    ctx: typer.Context,
    org: str | None = typer.Argument(None, help="Organization (default: your only one)"),
    name: str | None = typer.Argument(None, help="The peer to remove"),
) -> None:
    """Remove a WireGuard peer: its gateway stops accepting it."""
    client = context.client(ctx)
    if name is None:
        # One argument is the peer's name, in the caller's only organization.
        if org is None:
            raise ValidationError("name the peer to remove", hint="see `ferry wireguard list`")
        org, name = only_org(client), org
    removed = client.remove_wireguard_peer(org or only_org(client), name)
    output.stderr().print(f"Removed peer {removed.name} of {removed.org_slug}")
