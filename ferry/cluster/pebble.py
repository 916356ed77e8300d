"""Pebble, the ACME test CA, as the embedded cluster's certificate authority.

The Debian package ships neither a config nor a TLS certificate for Pebble's own
HTTPS: ``write_pebble_files`` writes both (a self-signed certificate for the
listen address, which the control plane trusts through ``FERRY_ACME_CA_BUNDLE``).
Pebble's validation authority connects to ``http_port``/``tls_port`` of the
address a name resolves to, asking the cluster's edge DNS (``-dnsserver``), so
challenges are answered by the real edges. ``certificateValidityPeriod``
shortens certificates (the renewal test); ``domainBlocklist`` makes Pebble
refuse names (a CA that says no).
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from ferry.errors import UnavailableError
from ferry.tls.ca import self_signed, write_private

__all__ = [
    "PEBBLE_BINARY",
    "ClusterCa",
    "PebbleFiles",
    "acme_root_pem",
    "cluster_ca",
    "pebble_command",
    "pebble_env",
    "write_pebble_files",
]

PEBBLE_BINARY = "/usr/bin/pebble"


@dataclass(frozen=True)
class PebbleFiles:
    config: Path
    cert: Path  # trust this for Pebble's HTTPS (FERRY_ACME_CA_BUNDLE)
    key: Path
    directory_url: str


def write_pebble_files(
    root: Path,
    *,
    listen: tuple[str, int],
    management: tuple[str, int],
    http_port: int = 80,
    tls_port: int = 443,
    validity_seconds: int | None = None,
    blocklist: Sequence[str] = (),
) -> PebbleFiles:
    """Write Pebble's config and TLS certificate under ``root`` (the key 0600).

    ``http_port``/``tls_port``: where its validation authority reaches the edges for
    HTTP-01 and TLS-ALPN-01. ``validity_seconds``: the lifetime of the certificates
    it issues (Pebble's default: about five years). ``blocklist``: names it refuses.
    """
    root.mkdir(parents=True, exist_ok=True)
    host = listen[0]
    # Pebble's own HTTPS (its directory): a self-signed certificate the ACME client
    # trusts directly; ten years, since nothing renews it.
    own = self_signed((host, "localhost"), days=3650)
    cert, key = root / "pebble-cert.pem", root / "pebble-key.pem"
    cert.write_bytes(own.chain_pem)
    write_private(key, own.key_pem)
    settings: dict[str, object] = {
        "listenAddress": f"{host}:{listen[1]}",
        "managementListenAddress": f"{management[0]}:{management[1]}",
        "certificate": str(cert),
        "privateKey": str(key),
        "httpPort": http_port,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
        "domainBlocklist": list(blocklist),
    }
    if validity_seconds is not None:
        settings["certificateValidityPeriod"] = validity_seconds
    config = root / "pebble-config.json"
    config.write_text(json.dumps({"pebble": settings}, indent=2))
    return PebbleFiles(config, cert, key, f"https://{host}:{listen[1]}/dir")


def pebble_command(files: PebbleFiles, dns_server: str | None) -> list[str]:
    """The argv that runs Pebble with ``files``; ``dns_server`` (HOST:PORT) resolves the
    names it validates (the cluster's edge DNS)."""
    argv = [PEBBLE_BINARY, "-config", str(files.config)]
    if dns_server:
        argv += ["-dnsserver", dns_server]
    return argv


def pebble_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Pebble's environment: validate at once, never reject a good nonce, reuse no
    authorization (every order is validated by the edges for real)."""
    env = dict(os.environ if base is None else base)
    env.update(PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
    return env


#: Where Pebble listens on its region's address (ACME directory, management).
PEBBLE_PORT = 14000
PEBBLE_MANAGEMENT_PORT = 15000


@dataclass(frozen=True)
class ClusterCa:
    """Pebble as one embedded cluster runs it: its argv and env (run inside ``netns``),
    and the control plane's environment that points at it."""

    netns: str
    argv: list[str]
    env: dict[str, str]
    server_env: dict[str, str]


def cluster_ca(
    root: Path,
    *,
    netns: str,
    region_address: str,
    anycast_address: str,
    domain: str,
    dns_port: int = 53,
) -> ClusterCa:
    """Pebble in one region's namespace, on that region's address (reachable from the
    control plane), validating through that region's edge: names resolve with the edge
    DNS on ``region_address`` and challenges reach the edge's ports 80/443 at the
    anycast address every name of the cluster resolves to. Writes Pebble's files."""
    files = write_pebble_files(
        root,
        listen=(region_address, PEBBLE_PORT),
        management=(region_address, PEBBLE_MANAGEMENT_PORT),
        http_port=80,
        tls_port=443,
    )
    env = {k: v for k, v in pebble_env({}).items() if k.startswith("PEBBLE_")}
    return ClusterCa(
        netns=netns,
        argv=pebble_command(files, f"{region_address}:{dns_port}"),
        env=env,
        server_env={
            "FERRY_ACME_DIRECTORY": files.directory_url,
            "FERRY_ACME_CA_BUNDLE": str(files.cert),
            "FERRY_EDGE_ADDRESSES": anycast_address,
            "FERRY_CLUSTER_DOMAIN": domain,
            "FERRY_DNS_SERVER": f"{region_address}:{dns_port}",
        },
    )


def acme_root_pem(root: Path, timeout: float = 5.0) -> str:
    """The root certificate (PEM) of the Pebble whose files are under ``root``, from its
    management API (``/roots/0``): what a client trusts to verify the certificates that
    Pebble issues. Pebble makes a new root each time it starts, so ask again after a
    ``ferry cluster up``. ``UnavailableError`` when no Pebble was set up there or it
    does not answer."""
    try:
        settings = json.loads((root / "pebble-config.json").read_text())["pebble"]
        management = str(settings["managementListenAddress"])
        verify = ssl.create_default_context(cafile=str(settings["certificate"]))
    except (OSError, ValueError, KeyError, ssl.SSLError) as exc:
        raise UnavailableError(
            f"no ACME CA is set up in {root}: {exc}",
            hint="the embedded cluster runs Pebble when /usr/bin/pebble is installed; "
            "start the cluster with `ferry cluster up`",
        ) from exc
    try:
        answer = httpx.get(f"https://{management}/roots/0", verify=verify, timeout=timeout)
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        raise UnavailableError(
            f"the cluster's ACME CA (Pebble, management API at {management}) does not answer: "
            f"{type(exc).__name__}",
            hint="is the cluster up? `ferry cluster status`; Pebble's log is in its logs dir",
        ) from exc
    if "BEGIN CERTIFICATE" not in answer.text:
        raise UnavailableError(f"Pebble at {management} answered no certificate for its root")
    return answer.text
