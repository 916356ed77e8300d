"""Certificates and TLS clients for the edge's HTTPS tests: a cluster CA, a trust context,
and ``https_edge``: one machine behind an edge serving HTTPS with the production listener."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.proxy.routes import Backend
from ferry.proxy.server import EdgeProxy
from ferry.tls.bundle import EdgeTls
from ferry.tls.ca import ClusterCa

from .harness import DOMAIN, AppBackend, TableBox, backend_entry, backends, running_proxy

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


def one_machine(server: AppBackend) -> Backend:
    """The plain route for ``server``: machine ``m1`` of app ``web`` in ams."""
    return backend_entry("m1", "ams", server)


@dataclass(frozen=True)
class HttpsEdge:
    ams: AppBackend  # the machine's server; it answers ``ams-1``
    proxy: EdgeProxy
    port: int  # the edge's HTTPS listener's


@contextlib.asynccontextmanager
async def https_edge(
    tls: Callable[[], EdgeTls] = cluster_tls,
    route: Callable[[AppBackend], Backend] = one_machine,
    **proxy_options: Any,
) -> AsyncIterator[HttpsEdge]:
    """A machine routed by ``route`` behind an edge with an HTTPS listener on a free port that
    takes its certificates from ``tls``; ``proxy_options`` go to ``running_proxy``.
    Everything it started is stopped on the way out."""
    async with backends("ams-1") as (ams,):
        box = TableBox()
        box.set(route(ams))
        async with running_proxy(
            box, https_listen=("127.0.0.1", 0), tls=tls, **proxy_options
        ) as proxy:
            assert proxy.https_address is not None
            yield HttpsEdge(ams, proxy, proxy.https_address[1])
