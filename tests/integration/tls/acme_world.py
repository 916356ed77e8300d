"""A real ACME world on loopback: Pebble, a ``ferry server`` process, one real edge.

The edge (``EdgeProxy`` on a free port standing in for port 80, optionally a TLS
listener on another standing in for 443, and the edge DNS on a free UDP port)
follows the server's ``/v1/edges/{region}/tls`` feed with an edge credential,
through ``EdgeTlsFeed`` — as ``ferry proxy`` does. Pebble validates HTTP-01 and
TLS-ALPN-01 on the edge's ports and resolves names through the edge DNS, so every
certificate here is obtained for real. Everything is stopped by pid by ``close``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvloop

from ferry.client import FerryClient
from ferry.cluster.pebble import pebble_command, pebble_env, write_pebble_files
from ferry.model.access import TokenKind
from ferry.proxy.dns import serve_dns
from ferry.proxy.routes import RouteTable
from ferry.proxy.server import EdgeProxy
from ferry.tls.bundle import EdgeTls
from ferry.tls.ca import ClusterCa
from ferry.tls.edge_feed import EdgeTlsFeed
from ferry.tls.edge_tls import merge_sources, static_source

from ...server_process import ServerProcess
from ..images import free_loopback_port

REGION = "ams"
DOMAIN = "ferry.test"


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``probe`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")


class Edge:
    """An edge on its own uvloop thread: HTTP on ``http_port``, DNS on ``dns_port``; with
    ``https_port``, HTTPS there with ``default`` under the feed (as ``ferry proxy`` merges
    the cluster's wildcard and the control plane's certificates)."""

    def __init__(
        self,
        api_url: str,
        token: str,
        state_dir: Path,
        http_port: int,
        dns_port: int,
        https_port: int | None = None,
        default: EdgeTls | None = None,
    ):
        self.http_port = http_port
        self.dns_port = dns_port
        self.https_port = https_port
        self.feed = EdgeTlsFeed(
            FerryClient(api_url, token, timeout=10), REGION, state_dir / "tls.json"
        )
        self.feed.load_cached()
        self.tls = (
            self.feed.current
            if default is None
            else merge_sources(static_source(default), self.feed.current)
        )
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.proxy: EdgeProxy | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._threads = [
            threading.Thread(target=self.feed.run, args=(self._stop,), daemon=True),
            threading.Thread(target=self._serve, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        assert self._ready.wait(10), "the edge did not start"

    def _serve(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._done = asyncio.Event()
            table = RouteTable()
            proxy = EdgeProxy(
                REGION, DOMAIN, lambda: table, {}, http_listen=("127.0.0.1", self.http_port),
                tls=self.tls,
                https_listen=None if self.https_port is None else ("127.0.0.1", self.https_port),
            )  # fmt: skip
            await proxy.start()
            self.proxy = proxy
            dns = await serve_dns(DOMAIN, "127.0.0.1", self.dns_port, tls=self.feed.current)
            self._ready.set()
            await self._done.wait()
            dns.close()
            await proxy.stop()

        uvloop.run(main())

    def close(self) -> None:
        self._stop.set()
        if self._loop is not None and self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set)
        for thread in self._threads:
            thread.join(timeout=35)


class AcmeWorld:
    """Pebble + server + edge. ``validity``: Pebble's certificate lifetime in seconds.
    ``challenge``: what the control plane answers for plain names (``FERRY_ACME_CHALLENGE``).
    ``https``: the edge also serves TLS (on ``https_port``, where Pebble validates
    TLS-ALPN-01), with a cluster CA's ``*.ferry.test`` certificate as its default
    (``cluster_ca``, ``cluster_tls``)."""

    def __init__(
        self,
        root: Path,
        *,
        validity: int | None = None,
        blocked: tuple[str, ...] = (),
        challenge: str = "http-01",
        https: bool = False,
    ):
        self.root = root
        self.http_port = free_loopback_port()
        self.https_port = free_loopback_port()
        self.https = https
        self.dns_port = free_udp_port()
        pebble_port = free_loopback_port()
        self.management_url = f"https://127.0.0.1:{free_loopback_port()}"
        self.cluster_ca = ClusterCa.create()
        self.cluster_tls = EdgeTls(
            certificates=dict.fromkeys(
                (f"*.{DOMAIN}", DOMAIN), self.cluster_ca.issue((f"*.{DOMAIN}", DOMAIN))
            )
        )
        self.pebble_files = write_pebble_files(
            root / "pebble",
            listen=("127.0.0.1", pebble_port),
            management=("127.0.0.1", int(self.management_url.rsplit(":", 1)[1])),
            http_port=self.http_port,
            tls_port=self.https_port,
            validity_seconds=validity,
            blocklist=blocked,
        )
        self.pebble: subprocess.Popen[bytes] | None = None
        self.start_pebble()
        os.environ.update(
            FERRY_ACME_DIRECTORY=self.pebble_files.directory_url,
            FERRY_ACME_CA_BUNDLE=str(self.pebble_files.cert),
            FERRY_EDGE_ADDRESSES="127.0.0.1",
            FERRY_DNS_SERVER=f"127.0.0.1:{self.dns_port}",
            FERRY_CLUSTER_DOMAIN=DOMAIN,
            FERRY_ACME_BACKOFF_SECONDS="1",
            FERRY_ACME_CHALLENGE=challenge,
        )
        self.server = ServerProcess(root / "home")
        self.server.start()
        self.admin = self.server.client()
        self.admin.create_app("web")
        self.edge_token = self.admin.create_token(
            TokenKind.EDGE, name="edge-ams", region=REGION
        ).token
        self.edge: Edge | None = None
        self.start_edge()

    def start_pebble(self) -> None:
        log = (self.root / "pebble.log").open("ab")
        self.pebble = subprocess.Popen(
            pebble_command(self.pebble_files, f"127.0.0.1:{self.dns_port}"),
            env=pebble_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = self.pebble_files.directory_url
        cert = str(self.pebble_files.cert)

        def answers() -> bool:
            try:
                return (
                    httpx.get(
                        url, verify=ssl.create_default_context(cafile=cert), timeout=1
                    ).status_code
                    == 200
                )
            except httpx.HTTPError:
                return False

        wait_for("pebble answers its directory", answers, 15)

    def stop_pebble(self) -> None:
        if self.pebble is not None and self.pebble.poll() is None:
            self.pebble.terminate()
            self.pebble.wait(timeout=10)

    def start_edge(self) -> None:
        self.edge = Edge(
            self.server.url, self.edge_token, self.root / "edge", self.http_port, self.dns_port,
            self.https_port if self.https else None, self.cluster_tls if self.https else None,
        )  # fmt: skip

    def pebble_root(self) -> str:
        """Pebble's current root certificate (PEM), from its management API: what a
        client trusts to verify the certificates Pebble issues."""
        verify = ssl.create_default_context(cafile=str(self.pebble_files.cert))
        answer = httpx.get(f"{self.management_url}/roots/0", verify=verify, timeout=5)
        answer.raise_for_status()
        return answer.text

    def stop_edge(self) -> None:
        if self.edge is not None:
            self.edge.close()
            self.edge = None

    def issued(self, hostname: str, timeout: float = 30.0) -> dict[str, Any]:
        """The certificate once it is configured (issued and valid)."""

        seen: list[dict[str, Any]] = []

        def ready() -> dict[str, Any] | None:
            cert = self.admin.get_certificate("web", hostname)
            seen[:] = [cert]
            return cert if cert["configured"] else None

        try:
            result: dict[str, Any] = wait_for(f"{hostname} issued", ready, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {seen[-1] if seen else None}") from None
        return result

    def close(self) -> None:
        self.server.kill_9()  # first: the edge's long-poll ends at once
        self.stop_edge()
        self.stop_pebble()
        for name in (
            "FERRY_ACME_DIRECTORY", "FERRY_ACME_CA_BUNDLE", "FERRY_EDGE_ADDRESSES",
            "FERRY_DNS_SERVER", "FERRY_CLUSTER_DOMAIN", "FERRY_ACME_BACKOFF_SECONDS",
            "FERRY_ACME_CHALLENGE",
        ):  # fmt: skip
            os.environ.pop(name, None)
