"""Certificates and TLS clients for the edge's HTTPS tests: a cluster CA, a trust context."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

from ferry.tls.bundle import EdgeTls
from ferry.tls.ca import ClusterCa

from .harness import DOMAIN

CA = ClusterCa.create("Ferry test CA")
WILDCARD = CA.issue((f"*.{DOMAIN}", DOMAIN))


def cluster_tls(**extra: object) -> EdgeTls:
    """The edge's certificates: the cluster wildcard, plus ``extra`` EdgeTls fields."""
    certificates = {name: WILDCARD for name in WILDCARD.hostnames}
    certificates.update(extra.pop("certificates", {}))  # type: ignore[call-overload]
    return EdgeTls(version=1, certificates=certificates, **extra)  # type: ignore[arg-type]


def trusting(alpn: tuple[str, ...] = ("h2", "http/1.1")) -> ssl.SSLContext:
    """A client context that trusts only the test CA."""
    context = ssl.create_default_context(cadata=CA.cert_pem.decode())
    context.set_alpn_protocols(list(alpn))
    return context


def write_ca(directory: Path) -> Path:
    path = directory / "ca.pem"
    path.write_bytes(CA.cert_pem)
    return path


async def handshake(
    port: int, server_name: str | None, context: ssl.SSLContext | None = None
) -> tuple[ssl.SSLObject, asyncio.StreamWriter]:
    """A TLS connection to 127.0.0.1:port with SNI ``server_name``; raises ``ssl.SSLError``."""
    context = context or trusting()
    if server_name is None:
        context.check_hostname = False
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=server_name or "", ssl_handshake_timeout=5
    )
    ssl_object = writer.get_extra_info("ssl_object")
    assert isinstance(ssl_object, ssl.SSLObject)
    return ssl_object, writer


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
