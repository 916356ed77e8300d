"""The edge's TLS listener with real clients (Python's ssl, httpx, curl) and real backends."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ferry.proxy.routes import Backend
from ferry.tls.ca import self_signed
from ferry.tls.edge_tls import ACME_TLS_ALPN

from .harness import DOMAIN, AppBackend, TableBox, backend_entry, edge_client, run, running_proxy
from .tls_harness import CA, close, cluster_tls, handshake, https_edge, trusting, write_ca


def _forced(server: AppBackend) -> Backend:
    """``server``'s entry with ``[http_service] force_https = true`` (ports 80 and 443)."""
    entry = backend_entry("m1", "ams", server)
    service = dataclasses.replace(
        entry.services[0], force_https=True, ports=(80, 443), handlers=("http", "tls")
    )
    return dataclasses.replace(entry, services=(service,))


async def _get(port: int, host: str, path: str, *, plain: bool = False) -> bytes:
    """One HTTP/1.1 GET over TLS with SNI ``host`` (``plain``: no TLS); the whole answer."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1",
        port,
        ssl=None if plain else trusting(("http/1.1",)),
        server_hostname=None if plain else host,
    )
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read(-1)
    await close(writer)
    return data


def test_https_request_reaches_the_machine_marked_https() -> None:
    async def scenario() -> None:
        async with https_edge() as edge:
            proxy, port = edge.proxy, edge.port
            answer = await _get(port, f"web.{DOMAIN}", "/headers")
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            seen = json.loads(body)
            assert seen["x-forwarded-proto"] == "https"
            assert seen["x-forwarded-ssl"] == "on"
            assert seen["x-forwarded-port"] == str(port)
            # keep-alive: several requests on one TLS connection
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=trusting(), server_hostname=f"web.{DOMAIN}"
            )
            ssl_object = writer.get_extra_info("ssl_object")
            assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
            assert ssl_object.selected_alpn_protocol() in ("h2", "http/1.1")
            if ssl_object.selected_alpn_protocol() == "http/1.1":
                for _ in range(3):
                    writer.write(f"GET / HTTP/1.1\r\nHost: web.{DOMAIN}\r\n\r\n".encode())
                    head = await reader.readuntil(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200")
                    assert await reader.readexactly(5) == b"ams-1"
            await close(writer)
            # plain HTTP still says http
            async with edge_client(proxy) as c:
                plain = (await c.get("/headers")).json()
            assert plain["x-forwarded-proto"] == "http"
            assert plain["x-forwarded-ssl"] == "off"

    run(scenario())


def test_curl_over_https_with_the_cluster_ca(tmp_path: Path) -> None:
    ca_file = write_ca(tmp_path)

    async def scenario() -> None:
        async with https_edge() as edge:
            port = edge.port
            host = f"web.{DOMAIN}"
            argv = [
                "curl", "-sS", "--http1.1", "--cacert", str(ca_file), "--max-time", "10",
                "--resolve", f"{host}:{port}:127.0.0.1", "-w", "\n%{http_version}",
                f"https://{host}:{port}/",
            ]  # fmt: skip
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
            assert out.decode().split("\n") == ["ams-1", "1.1"]
            # a client that does not trust the cluster CA refuses the edge
            proc = await asyncio.create_subprocess_exec(
                *[a for a in argv if a not in ("--cacert", str(ca_file))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            _, err = await proc.communicate()
            assert proc.returncode == 60, err.decode()  # peer certificate not trusted

    run(scenario(), timeout=60)


def test_sni_picks_exact_then_wildcard_and_refuses_unknown_names() -> None:
    exact = CA.issue(("api.example.com",))
    wildcard = CA.issue(("*.example.com",))
    tls = cluster_tls(certificates={"api.example.com": exact, "*.example.com": wildcard})

    def leaf_names(ssl_object: ssl.SSLObject) -> list[str]:
        """The DNS names of the certificate the edge presented."""
        der = ssl_object.getpeercert(binary_form=True)
        assert der is not None
        san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        return san.value.get_values_for_type(x509.DNSName)

    async def scenario() -> None:
        async with https_edge(tls=lambda: tls) as edge:
            proxy, port = edge.proxy, edge.port
            obj, w = await handshake(port, "api.example.com")
            assert leaf_names(obj) == ["api.example.com"]
            await close(w)
            obj, w = await handshake(port, "www.example.com")
            assert leaf_names(obj) == ["*.example.com"]
            await close(w)
            for name in ("example.com", "a.b.example.com", "nobody.else.org", None):
                with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
                    await handshake(port, name)
            assert proxy.tls_contexts is not None and proxy.tls_contexts.refused == 4
            # the edge still serves everyone else
            assert (await _get(port, f"web.{DOMAIN}", "/")).endswith(b"ams-1")
            assert proxy.metrics_address is not None
            metrics = await _get(proxy.metrics_address[1], "", "/metrics", plain=True)
            assert b'ferry_edge_tls_refused_total{region="ams"} 4.0' in metrics
            done = [
                float(line.rsplit(b" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith(b"ferry_edge_tls_handshakes_total{")
            ]
            assert sum(done) == 3  # api, www and web; the refused ones are not counted

    run(scenario())


def test_new_certificates_apply_to_the_next_handshake_without_restart() -> None:
    snapshots = [cluster_tls()]

    async def scenario() -> None:
        async with https_edge(tls=lambda: snapshots[-1]) as edge:
            port = edge.port
            with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
                await handshake(port, "shop.example.net")
            added = CA.issue(("shop.example.net",))
            snapshots.append(cluster_tls(certificates={"shop.example.net": added}))
            obj, w = await handshake(port, "shop.example.net")
            assert obj.getpeercert()["subject"] == ((("commonName", "shop.example.net"),),)
            await close(w)

    run(scenario())


def test_stalled_handshakes_and_garbage_close_only_their_connection() -> None:
    async def scenario() -> None:
        async with https_edge(tls_handshake_timeout=0.5) as edge:
            port = edge.port
            loop = asyncio.get_running_loop()
            stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
            began = loop.time()
            # garbage: plain HTTP on the TLS port is answered with an alert, then closed
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: web.ferry.test\r\n\r\n" + b"\x00" * 300)
            async with asyncio.timeout(5):
                garbage_answer = await reader.read(-1)
            assert b"HTTP" not in garbage_answer
            writer.close()
            # meanwhile the edge serves a real client
            assert (await _get(port, f"web.{DOMAIN}", "/")).endswith(b"ams-1")
            for stalled_reader, stalled_writer in stalled:
                async with asyncio.timeout(5):
                    assert await stalled_reader.read(-1) == b""  # closed by the edge
                stalled_writer.close()
            waited = loop.time() - began
            assert 0.4 < waited < 3.0, waited
            assert (await _get(port, f"web.{DOMAIN}", "/")).endswith(b"ams-1")

    run(scenario())


def test_force_https_redirects_plain_http_and_https_passes() -> None:
    async def scenario() -> None:
        async with https_edge(route=_forced) as edge:
            ams, proxy, port = edge.ams, edge.proxy, edge.port
            async with edge_client(proxy) as c:
                r = await c.get("/some/path?q=1")
                assert r.status_code == 301
                assert r.headers["location"] == f"https://web.{DOMAIN}:{port}/some/path?q=1"
                r = await c.post("/form", content=b"a=1")
                assert r.status_code == 308
                assert r.headers["location"] == f"https://web.{DOMAIN}:{port}/form"
            assert not ams.requests  # nothing reached the machine over plain HTTP
            answer = await _get(port, f"web.{DOMAIN}", "/some/path?q=1")
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ams-1")

    run(scenario())


def test_tls_alpn_01_challenge_gets_its_certificate_with_acme_tls_1() -> None:
    challenge = self_signed(("pending.example.org",))
    tls = cluster_tls(alpn01={"pending.example.org": challenge})

    async def scenario() -> None:
        async with https_edge(tls=lambda: tls) as edge:
            port = edge.port
            validator = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            validator.check_hostname = False
            validator.verify_mode = ssl.CERT_NONE
            validator.set_alpn_protocols([ACME_TLS_ALPN])
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=validator, server_hostname="pending.example.org"
            )
            obj = writer.get_extra_info("ssl_object")
            assert obj.selected_alpn_protocol() == ACME_TLS_ALPN
            der = obj.getpeercert(binary_form=True)
            pem = x509.load_pem_x509_certificate(challenge.chain_pem)
            assert der == pem.public_bytes(Encoding.DER)
            async with asyncio.timeout(5):
                assert await reader.read(-1) == b""  # the validator only needed the handshake
            await close(writer)
            # while it is pending, handshakes go through the event loop's TLS (which can
            # peek at the ALPN offered): everyone else is served as before
            assert edge.proxy.tls_contexts is not None
            assert edge.proxy.tls_contexts.challenge_pending()
            assert (await _get(port, f"web.{DOMAIN}", "/")).endswith(b"ams-1")

    run(scenario())


def test_no_tls_source_means_no_https_listener() -> None:
    async def scenario() -> None:
        box = TableBox()
        async with running_proxy(box) as proxy:
            assert proxy.https_address is None

    run(scenario())


def test_tls_handler_alone_terminates_tls_then_relays_raw_tcp() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        public = int(probe.getsockname()[1])

    def tls_only(server: AppBackend) -> Backend:
        """A ``[[services]]`` port on ``public`` with ``handlers = ["tls"]``."""
        entry = backend_entry("m1", "ams", server, tcp_port=public)
        service = dataclasses.replace(entry.services[0], handlers=("tls",))
        return dataclasses.replace(entry, services=(service,))

    async def scenario() -> None:
        async with https_edge(route=tls_only) as edge:
            proxy = edge.proxy
            assert public in proxy.tcp.ports
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", public, ssl=trusting(), server_hostname=f"web.{DOMAIN}"
            )
            writer.write(f"GET /headers HTTP/1.1\r\nHost: web.{DOMAIN}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            await close(writer)
            # raw TCP: the machine sees the client's bytes, no edge headers
            assert "x-forwarded-proto" not in json.loads(body)
            with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
                await handshake(public, "nobody.example.org")
            # no protocol is agreed on the machine's behalf: a client offering h2
            # gets no ALPN, and speaks what the machine speaks
            obj, w = await handshake(public, f"web.{DOMAIN}")
            assert obj.selected_alpn_protocol() is None
            await close(w)

    run(scenario())
