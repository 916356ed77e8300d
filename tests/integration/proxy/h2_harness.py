"""TLS and HTTP/2 for the edge's tests: a throwaway CA, a TLS listener choosing the protocol by
ALPN, and a small HTTP/2 client on the ``h2`` library.

The production TLS listener is not this one: ``tls_listener`` only stands in
for it so that ``H2Connection`` can be driven by real clients (curl, h2load,
Python ``ssl`` + ``h2``): ALPN ``h2`` gets an ``H2Connection``, anything
else the HTTP/1.1 ``ClientConnection``. ``tls_edge`` and ``h2_edge`` put the
set-up most tests share (one machine, the edge, this listener, a client) in one
``async with``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ferry.proxy.connection import ClientConnection
from ferry.proxy.h2conn import H2Connection
from ferry.proxy.http import HttpEdge
from ferry.proxy.server import EdgeProxy

from .harness import DOMAIN, AppBackend, TableBox, backend_entry, backends, running_proxy


@dataclass(frozen=True)
class EdgeCerts:
    ca: Path  # the CA's certificate (PEM): clients trust it
    cert: Path  # the server's chain (PEM)
    key: Path
    bundle: Path  # cert + key in one file (HAProxy's ``crt``)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        return ctx

    def client_context(self, alpn: tuple[str, ...] = ("h2",)) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.set_alpn_protocols(list(alpn))
        return ctx


def make_certs(directory: Path, names: tuple[str, ...] = (f"*.{DOMAIN}", DOMAIN)) -> EdgeCerts:
    """A CA made for this run and a server certificate it signed for ``names`` and 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ferry test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    paths = EdgeCerts(
        directory / "ca.pem", directory / "cert.pem", directory / "key.pem",
        directory / "bundle.pem",
    )  # fmt: skip
    paths.ca.write_bytes(ca_cert.public_bytes(pem))
    paths.cert.write_bytes(cert.public_bytes(pem))
    paths.key.write_bytes(key_pem)
    paths.bundle.write_bytes(cert.public_bytes(pem) + key_pem)
    return paths


class _ByAlpn(asyncio.Protocol):
    """Hands the connection to an H2Connection or a ClientConnection once TLS is up."""

    def __init__(self, edge: HttpEdge) -> None:
        self.edge = edge

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        protocol: asyncio.Protocol
        protocol = (
            H2Connection(self.edge) if alpn == "h2" else ClientConnection(self.edge, tls=True)
        )
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


@contextlib.asynccontextmanager
async def tls_listener(edge: HttpEdge, certs: EdgeCerts) -> AsyncIterator[int]:
    """A TLS listener on 127.0.0.1 (free port) for ``edge``; yields the port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _ByAlpn(edge), "127.0.0.1", 0, ssl=certs.server_context()
    )
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


@dataclass
class H2Response:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    interim: list[int] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    reset: int | None = None  # RST_STREAM error code, when the server reset the stream
    done: asyncio.Event = field(default_factory=asyncio.Event)


class H2Client:
    """An HTTP/2 client over TLS on ``h2``: concurrent requests, flow control both ways.

    ``read_window``: when False, received DATA is not acknowledged until
    ``open_window`` (a client that reads slowly).
    """

    def __init__(self) -> None:
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            # Send what a test says, malformed or not: the edge is under test.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.conn = h2.connection.H2Connection(config=config)
        self.responses: dict[int, H2Response] = {}
        self.window_changed = asyncio.Event()
        self.terminated: h2.events.ConnectionTerminated | None = None
        self.pongs: list[bytes] = []
        self.closed = asyncio.Event()
        self.read_window = True
        self.unacked: list[tuple[int, int]] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, port: int, certs: EdgeCerts, host: str = f"web.{DOMAIN}") -> H2Client:
        self._reader, self._writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=certs.client_context(), server_hostname=host
        )
        ssl_object = self._writer.get_extra_info("ssl_object")
        assert ssl_object.selected_alpn_protocol() == "h2"
        self.conn.initiate_connection()
        self.flush()
        self._task = asyncio.get_running_loop().create_task(self._read())
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    def send_raw(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while data := await self._reader.read(65536):
                for event in self.conn.receive_data(data):
                    self._on(event)
                self.flush()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            for response in self.responses.values():
                response.done.set()

    def _on(self, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", None)
        response = self.responses.get(sid) if sid else None
        if isinstance(event, h2.events.ResponseReceived) and response is not None:
            headers = {k.decode(): v.decode() for k, v in event.headers or ()}
            response.status = int(headers.pop(":status"))
            response.headers = headers
        elif isinstance(event, h2.events.InformationalResponseReceived) and response:
            response.interim.append(int(dict(event.headers or ())[b":status"]))
        elif isinstance(event, h2.events.DataReceived) and response is not None:
            response.body += event.data or b""
            size = event.flow_controlled_length or 0
            if self.read_window:
                self.conn.acknowledge_received_data(size, sid or 0)
            else:
                self.unacked.append((size, sid or 0))
        elif isinstance(event, h2.events.StreamEnded) and response is not None:
            response.done.set()
        elif isinstance(event, h2.events.StreamReset) and response is not None:
            response.reset = int(event.error_code or 0)
            response.done.set()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self.window_changed.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.terminated = event
        elif isinstance(event, h2.events.PingAckReceived):
            self.pongs.append(event.ping_data or b"")

    def open_window(self) -> None:
        """Acknowledge every byte held back (``read_window = False``) and read freely again."""
        self.read_window = True
        for size, sid in self.unacked:
            self.conn.acknowledge_received_data(size, sid)
        self.unacked.clear()
        self.flush()

    def start(
        self,
        method: str,
        path: str,
        headers: tuple[tuple[str, str], ...] = (),
        *,
        authority: str = f"web.{DOMAIN}",
        end_stream: bool = True,
        raw_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> int:
        """Open a stream with a request head; returns its id."""
        sid = self.conn.get_next_available_stream_id()
        head = raw_headers or [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            *((k.encode(), v.encode()) for k, v in headers),
        ]
        self.responses[sid] = H2Response()
        self.conn.send_headers(sid, head, end_stream=end_stream)
        self.flush()
        return sid

    async def send_body(self, sid: int, body: bytes, *, end: bool = True) -> None:
        """Send ``body`` on stream ``sid`` as the windows allow."""
        view = memoryview(body)
        while view:
            window = min(
                self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                self.window_changed.clear()
                await self.window_changed.wait()
                continue
            self.conn.send_data(sid, bytes(view[:window]))
            view = view[window:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    async def request(
        self,
        method: str,
        path: str,
        headers: tuple[tuple[str, str], ...] = (),
        *,
        body: bytes | None = None,
        authority: str = f"web.{DOMAIN}",
    ) -> H2Response:
        sid = self.start(method, path, headers, authority=authority, end_stream=body is None)
        if body is not None:
            await self.send_body(sid, body)
        response = self.responses[sid]
        await response.done.wait()
        return response


@contextlib.asynccontextmanager
async def h2_client(port: int, certs: EdgeCerts) -> AsyncIterator[H2Client]:
    client = await H2Client().connect(port, certs)
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def tls_served(
    box: TableBox, certs: EdgeCerts, **proxy_options: Any
) -> AsyncIterator[tuple[EdgeProxy, int]]:
    """A running edge for ``box`` behind ``tls_listener``; yields the proxy and the TLS port.

    ``proxy_options`` go to ``running_proxy`` (``limits=``, ``rtt_ms=``, ``wake=`` …).
    """
    async with (
        running_proxy(box, **proxy_options) as proxy,
        tls_listener(proxy.http, certs) as port,
    ):
        yield proxy, port


@dataclass(frozen=True)
class TlsEdge:
    """One machine ``m1`` in ams, whose server answers ``ams-1``, behind ``tls_served``."""

    ams: AppBackend
    box: TableBox
    proxy: EdgeProxy
    port: int  # the TLS listener's


@contextlib.asynccontextmanager
async def tls_edge(certs: EdgeCerts, **proxy_options: Any) -> AsyncIterator[TlsEdge]:
    """``TlsEdge`` for one test; everything it started is stopped on the way out."""
    async with backends("ams-1") as (ams,):
        box = TableBox()
        box.set(backend_entry("m1", "ams", ams))
        async with tls_served(box, certs, **proxy_options) as (proxy, port):
            yield TlsEdge(ams, box, proxy, port)


@dataclass(frozen=True)
class H2Edge(TlsEdge):
    """``TlsEdge`` with an HTTP/2 client connected to it."""

    client: H2Client


@contextlib.asynccontextmanager
async def h2_edge(certs: EdgeCerts, **proxy_options: Any) -> AsyncIterator[H2Edge]:
    """``tls_edge`` plus ``h2_client`` on its port: the set-up most HTTP/2 tests share."""
    async with tls_edge(certs, **proxy_options) as edge, h2_client(edge.port, certs) as client:
        yield H2Edge(edge.ams, edge.box, edge.proxy, edge.port, client)
