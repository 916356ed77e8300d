"""The shared health prober against real servers on loopback: HTTP, TLS and garbage."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ferry.model import CheckConfig
from ferry.net.probe import MAX_HEAD_BYTES, ProbeResult, probe

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Seen:
    heads: list[bytes] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


def run(
    answer: Answer, check: CheckConfig, *, tls: ssl.SSLContext | None = None
) -> tuple[ProbeResult, Seen, float]:
    """Serve ``answer`` on 127.0.0.1 (TLS when given), probe it once; result, what the
    server saw, and seconds the probe took."""
    seen = Seen()
    if tls is not None:

        def note(sock: Any, name: str | None, ctx: ssl.SSLContext) -> None:
            seen.server_names.append(name)

        tls.sni_callback = note

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            seen.heads.append(await reader.readuntil(b"\r\n\r\n"))
            await answer(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def scenario() -> tuple[ProbeResult, float]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
        port = server.sockets[0].getsockname()[1]
        async with server:
            start = time.monotonic()
            result = await probe("127.0.0.1", port, check)
            return result, time.monotonic() - start

    result, took = asyncio.run(scenario())
    return result, seen, took


def says(data: bytes) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return answer


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)  # deliberate: a server that never answers


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a self-signed certificate for ``app.internal`` (openssl CLI)."""
    where: Path = tmp_path_factory.mktemp("tls")
    key, cert = where / "key.pem", where / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=app.internal", "-addext", "subjectAltName=DNS:app.internal",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_method_path_and_headers_are_sent_and_2xx_passes() -> None:
    check = CheckConfig(method="HEAD", path="/ready?x=1", headers={"X-Check": "yes"})
    result, seen, _ = run(says(OK), check)
    assert result == ProbeResult(True, "HEAD /ready?x=1: HTTP 200")
    head = seen.heads[0].decode()
    assert head.startswith("HEAD /ready?x=1 HTTP/1.1\r\n")
    assert "X-Check: yes\r\n" in head


def test_a_redirect_fails_and_is_not_followed() -> None:
    redirect = b"HTTP/1.1 301 Moved\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
    result, seen, _ = run(says(redirect), CheckConfig(path="/health"))
    assert not result.passed
    assert result.output == "GET /health: HTTP 301 (redirect to /elsewhere not followed)"
    assert len(seen.heads) == 1


def test_a_server_error_fails() -> None:
    result, _, _ = run(says(b"HTTP/1.1 503 Busy\r\n\r\n"), CheckConfig())
    assert result == ProbeResult(False, "GET /: HTTP 503")


@pytest.mark.parametrize(
    ("garbage", "said"),
    [
        (b"hello there\r\n\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 abc\r\n\r\n", "not an HTTP answer"),
        (b"\x00\xff\x16\x03binary", "not an HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * (2 * MAX_HEAD_BYTES), "HTTP 200"),
        (b"", "closed without an answer"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line 'no colon here'"),
    ],
)
def test_garbage_is_a_failed_check_never_an_exception(garbage: bytes, said: str) -> None:
    result, _, _ = run(says(garbage), CheckConfig(timeout="2s"))
    assert said in result.output
    assert result.passed is (said == "HTTP 200")  # an endless head is judged by its start


def test_a_silent_server_fails_at_the_timeout() -> None:
    result, _, took = run(never_answers, CheckConfig(timeout="0.3s"))
    assert not result.passed
    assert result.output.endswith("timed out after 0.3s")
    assert 0.25 <= took < 2


def test_a_refused_connect_fails() -> None:
    async def closed_port() -> ProbeResult:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        return await probe("127.0.0.1", port, CheckConfig(type="tcp"))

    result = asyncio.run(closed_port())
    assert not result.passed
    assert "refused" in result.output.lower()


def test_https_speaks_tls_and_skip_verify_accepts_a_self_signed_cert(
    self_signed: ssl.SSLContext,
) -> None:
    check = CheckConfig(protocol="https", tls_skip_verify=True, tls_server_name="app.internal")
    result, seen, _ = run(says(OK), check, tls=self_signed)
    assert result == ProbeResult(True, "GET /: HTTP 200")
    assert seen.server_names == ["app.internal"]  # SNI
    assert b"Host: app.internal:" in seen.heads[0]


def test_https_verifies_the_certificate_by_default(self_signed: ssl.SSLContext) -> None:
    check = CheckConfig(protocol="https", tls_server_name="app.internal")
    result, seen, _ = run(says(OK), check, tls=self_signed)
    assert not result.passed
    assert "TLS failed" in result.output and "certificate" in result.output
    assert seen.heads == []  # no request went over an unverified connection


def test_plain_http_to_a_tls_port_fails_cleanly(self_signed: ssl.SSLContext) -> None:
    result, _, _ = run(says(OK), CheckConfig(timeout="2s"), tls=self_signed)
    assert not result.passed
