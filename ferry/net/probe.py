"""One health probe of one machine, as Fly runs its checks: shared by the agent and the edge.

A ``tcp`` check passes when a connection opens. An ``http`` check sends the
check's ``method`` and ``path`` with its ``headers`` (``protocol = "https"``
speaks TLS first, verifying the certificate against ``tls_server_name`` or the
address unless ``tls_skip_verify``), reads the status line and headers, and
passes on a 2xx status; a redirect is not followed (a 3xx fails, saying where
it pointed). The whole probe is bounded by the check's ``timeout``.

``probe`` never raises (but for cancellation): a refused connect, a timeout, a
TLS failure, or an answer that is not HTTP at all is a failed result whose
one-line output says what happened, so one machine's garbage cannot break the
loop that checks the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import ssl
from dataclasses import dataclass
from typing import Protocol

from ferry.model import CheckConfig, parse_duration

__all__ = ["MAX_HEAD_BYTES", "NetProber", "ProbeResult", "Prober", "probe", "request_head"]

#: The status line and headers of a check's answer must fit in this; the body is never read.
MAX_HEAD_BYTES = 16 * 1024
_MIN_TIMEOUT = 0.05
USER_AGENT = "ferry-health-check"


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe: whether it passed, and one line saying why."""

    passed: bool
    output: str


class Prober(Protocol):
    """What runs a check (the agent's and the edge's seam; unit tests pass fakes)."""

    async def probe(self, address: str, port: int, check: CheckConfig) -> ProbeResult: ...


class NetProber:
    """The real prober: ``probe`` over the network."""

    async def probe(self, address: str, port: int, check: CheckConfig) -> ProbeResult:
        return await probe(address, port, check)


def request_head(address: str, port: int, check: CheckConfig) -> bytes:
    """The request a check sends (pure). ``Host`` is the check's own header if it has
    one, else ``tls_server_name`` or the address."""
    headers = {k.lower(): (k, v) for k, v in check.headers.items()}
    host = check.tls_server_name or (f"[{address}]" if ":" in address else address)
    lines = [f"{check.method} {check.path} HTTP/1.1"]
    if "host" not in headers:
        lines.append(f"Host: {host}:{port}")
    if "user-agent" not in headers:
        lines.append(f"User-Agent: {USER_AGENT}")
    lines += [f"{k}: {v}" for k, v in headers.values() if k.lower() != "connection"]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


@functools.cache
def _tls_context(skip_verify: bool) -> ssl.SSLContext:
    """One context per kind, made once: loading the system's CAs takes milliseconds."""
    context = ssl.create_default_context()
    if skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _judge(head: bytes, check: CheckConfig) -> ProbeResult:
    """Pass or fail from the answer's head (pure)."""
    status_line = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        shown = status_line[:60].decode("latin-1").encode("unicode_escape").decode()
        return ProbeResult(False, f"{check.method} {check.path}: not an HTTP answer: {shown!r}")
    status = int(parts[1])
    said = f"{check.method} {check.path}: HTTP {status}"
    complete = head.endswith(b"\r\n\r\n")
    lines = head.split(b"\r\n")[1:]
    for line in lines[:-1] if not complete else lines:
        if line and b":" not in line:
            shown = line[:60].decode("latin-1").encode("unicode_escape").decode()
            return ProbeResult(False, f"{said} with a malformed header line {shown!r}")
    if 300 <= status < 400:
        location = _header(head, b"location")
        where = f" to {location}" if location else ""
        return ProbeResult(False, f"{said} (redirect{where} not followed)")
    return ProbeResult(200 <= status < 300, said)


def _header(head: bytes, name: bytes) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial  # closed early: judge what came (a bare status line may pass)
    except asyncio.LimitOverrunError:
        return await reader.read(MAX_HEAD_BYTES)  # an endless head: judge its start


async def _http(address: str, port: int, check: CheckConfig) -> ProbeResult:
    tls = _tls_context(check.tls_skip_verify) if check.protocol == "https" else None
    server_hostname = (check.tls_server_name or address) if tls is not None else None
    reader, writer = await asyncio.open_connection(
        address, port, ssl=tls, server_hostname=server_hostname, limit=MAX_HEAD_BYTES
    )
    try:
        writer.write(request_head(address, port, check))
        await writer.drain()
        head = await _read_head(reader)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    if not head:
        return ProbeResult(
            False, f"{check.method} {check.path}: connection closed without an answer"
        )
    return _judge(head, check)


async def _tcp(address: str, port: int) -> ProbeResult:
    _, writer = await asyncio.open_connection(address, port)
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return ProbeResult(True, f"connected to {address}:{port}")


async def probe(address: str, port: int, check: CheckConfig) -> ProbeResult:
    """Run ``check`` against ``address:port`` now. Never raises but ``CancelledError``;
    takes at most the check's ``timeout``."""
    timeout = max(parse_duration(check.timeout), _MIN_TIMEOUT)
    what = f"{check.type} check on {address}:{port}"
    try:
        async with asyncio.timeout(timeout):
            if check.type == "tcp":
                return await _tcp(address, port)
            return await _http(address, port, check)
    except TimeoutError:
        return ProbeResult(False, f"{what} timed out after {timeout:g}s")
    except ssl.SSLError as exc:
        reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        return ProbeResult(False, f"{what}: TLS failed: {reason}")
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return ProbeResult(False, f"{what} failed: {reason}")
    except Exception as exc:  # anything a broken peer provokes fails this probe only
        return ProbeResult(False, f"{what} failed: {type(exc).__name__}: {exc}")
