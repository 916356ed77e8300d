"""The ``.internal`` resolver a host runs at ``fdaa::3``: UDP and TCP port 53.

``InternalDnsServer`` answers every query with ``internal_dns.answer`` from
its current ``InternalRecords`` and relays other names to an upstream
resolver. The seam for the agent::

    server = InternalDnsServer(load_records(path), region="ams", upstream=("10.0.0.1", 53))
    await server.start("fdaa::3", 53)          # in the host's network namespace
    ...
    server.update(new_records)                 # atomic: the next query sees them
    save_records(path, new_records)            # the copy answered from after a restart
    await server.close()

Guarantees:

- ``update`` swaps one reference: a query is answered wholly from the old or
  wholly from the new records, and the first query handled after ``update``
  returns (same event-loop turn included) sees the new ones.
- Local answers are computed synchronously with bounded work (see
  ``internal_dns.MAX_ADDRESSES``); a forward is a task of its own with a
  timeout (``upstream_timeout``, SERVFAIL when it passes or the upstream fails
  or none is configured) and at most ``max_forwards`` at once (SERVFAIL beyond),
  so a slow upstream never delays ``.internal`` answers.
- Malformed packets get FORMERR when their header is readable, else are
  dropped; an unexpected error in one query is logged and never stops the
  server. UDP answers larger than the asker's buffer (512 bytes, or its EDNS
  size up to 1232) come back truncated (TC) so the client retries over TCP.
- TCP: at most ``max_tcp_clients`` connections, each closed after
  ``tcp_idle_timeout`` seconds without a complete query or after
  ``MAX_TCP_QUERIES`` queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode

from ferry.errors import FerryError
from ferry.net.dns_wire_cache import WireCache
from ferry.net.internal_dns import Forward, answer
from ferry.net.internal_records import InternalRecords
from ferry.net.sixpn import DNS_ADDRESS

__all__ = [
    "MAX_TCP_QUERIES",
    "DnsCounters",
    "InternalDnsServer",
    "load_records",
    "save_records",
]

log = logging.getLogger(__name__)

UDP_DEFAULT_SIZE = 512
UDP_MAX_SIZE = 1232  # the DNS flag day's safe EDNS size: no IP fragmentation
TCP_MAX_SIZE = 65535
MAX_TCP_QUERIES = 100
_BIND_ATTEMPTS = 20


@dataclass
class DnsCounters:
    """What the server did since it started (for logs, tests and benchmarks)."""

    answered: int = 0
    forwarded: int = 0
    forward_failures: int = 0
    malformed: int = 0
    dropped: int = 0
    errors: int = 0


class InternalDnsServer:
    """Answers ``.internal`` for the organizations of one host; see the module docstring."""

    def __init__(
        self,
        records: InternalRecords,
        *,
        region: str | None,
        upstream: tuple[str, int] | None = None,
        upstream_timeout: float = 2.0,
        max_forwards: int = 256,
        max_tcp_clients: int = 64,
        tcp_idle_timeout: float = 10.0,
    ) -> None:
        self._records = records
        self._cache = WireCache(records, region)
        self.region = region
        self.upstream = upstream
        self.upstream_timeout = upstream_timeout
        self.max_forwards = max_forwards
        self.max_tcp_clients = max_tcp_clients
        self.tcp_idle_timeout = tcp_idle_timeout
        self.counters = DnsCounters()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._forwarding = 0
        self._tcp_clients = 0

    @property
    def records(self) -> InternalRecords:
        return self._records

    def update(self, records: InternalRecords) -> None:
        """Answer from ``records`` from now on (atomic; never blocks)."""
        # One assignment: a query sees the old pair or the new one, never a mix.
        self._records, self._cache = records, WireCache(records, self.region)

    async def start(
        self,
        host: str = str(DNS_ADDRESS),
        port: int = 53,
        *,
        udp_sock: socket.socket | None = None,
        tcp_sock: socket.socket | None = None,
    ) -> None:
        """Listen on ``host:port`` (UDP and TCP; fdaa::3:53 by default), or on the
        given bound sockets (both; made in another network namespace, say). With
        port 0, UDP and TCP share one free port. Raises ``OSError`` when it cannot
        bind."""
        loop = asyncio.get_running_loop()
        if udp_sock is not None and tcp_sock is not None:
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp_sock)
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), sock=udp_sock
            )
        else:
            for attempt in range(_BIND_ATTEMPTS):
                self._tcp = await asyncio.start_server(self._serve_tcp, host, port)
                bound = int(self._tcp.sockets[0].getsockname()[1])
                try:
                    self._udp, _ = await loop.create_datagram_endpoint(
                        lambda: _UdpProtocol(self), local_addr=(host, bound)
                    )
                    break
                except OSError:
                    # Port 0: the TCP port was free but its UDP twin is not; try another.
                    self._tcp.close()
                    self._tcp = None
                    if port != 0 or attempt == _BIND_ATTEMPTS - 1:
                        raise
        log.info("internal DNS listening on %s", self.address)

    @property
    def address(self) -> tuple[str, int]:
        """The UDP address the server listens on (its port when 0 was asked)."""
        if self._udp is None:
            raise RuntimeError("the DNS server is not started")
        name = self._udp.get_extra_info("sockname")
        return (str(name[0]), int(name[1]))

    async def close(self) -> None:
        """Stop listening and cancel forwards in flight. Idempotent."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 1.0)
            self._tcp = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def cached(self, wire: bytes, asker: str) -> tuple[bytes, int] | None:
        """A repeated plain question's rendered response and the asker's EDNS size
        (``WireCache.lookup``), or None: then ``handle`` it. Never raises."""
        try:
            found = self._cache.lookup(wire, asker)
        except Exception:
            log.exception("internal DNS: cached answer for %s failed", asker)
            return None
        if found is not None:
            self.counters.answered += 1
        return found

    def handle(self, wire: bytes, asker: str) -> dns.message.Message | Forward | None:
        """One query's local result; never raises (errors count and drop)."""
        try:
            result = answer(wire, asker, self._records, self.region)
        except Exception:
            self.counters.errors += 1
            log.exception("internal DNS: query from %s failed", asker)
            return None
        if result is None:
            self.counters.dropped += 1
        elif isinstance(result, Forward):
            self.counters.forwarded += 1
        elif result.rcode() == dns.rcode.FORMERR:
            self.counters.malformed += 1
        else:
            self.counters.answered += 1
        return result

    async def forward(self, query: dns.message.Message) -> dns.message.Message:
        """The upstream's answer to ``query``, or SERVFAIL (timeout, failure, none,
        too many forwards in flight)."""
        if self.upstream is None or self._forwarding >= self.max_forwards:
            return self._servfail(query)
        self._forwarding += 1
        try:
            host, port = self.upstream
            reply, _ = await asyncio.wait_for(
                dns.asyncquery.udp_with_fallback(
                    query, host, port=port, timeout=self.upstream_timeout
                ),
                self.upstream_timeout * 2,  # UDP then TCP, each with its own timeout
            )
            return reply
        except (OSError, TimeoutError, dns.exception.DNSException, ValueError):
            return self._servfail(query)
        finally:
            self._forwarding -= 1

    def _servfail(self, query: dns.message.Message) -> dns.message.Message:
        self.counters.forward_failures += 1
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        response.set_rcode(dns.rcode.SERVFAIL)
        return response

    def spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._tcp_clients >= self.max_tcp_clients:
            writer.close()
            return
        self._tcp_clients += 1
        asker = str(writer.get_extra_info("peername")[0])
        try:
            for _ in range(MAX_TCP_QUERIES):
                async with asyncio.timeout(self.tcp_idle_timeout):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    wire = await reader.readexactly(size)
                result = self.handle(wire, asker)
                if result is None:
                    break
                if isinstance(result, Forward):
                    result = await self.forward(result.query)
                reply = to_wire(result, TCP_MAX_SIZE)
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            pass
        finally:
            self._tcp_clients -= 1
            writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: InternalDnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        fast = self.server.cached(data, str(addr[0]))
        if fast is not None:
            reply, payload = fast
            if len(reply) <= _udp_limit(payload) and self.transport is not None:
                with contextlib.suppress(OSError):
                    self.transport.sendto(reply, addr)
                return
        result = self.server.handle(data, str(addr[0]))
        if result is None:
            return
        if isinstance(result, Forward):
            self.server.spawn(self._relay(result.query, addr))
            return
        self._send(result, addr)

    async def _relay(self, query: dns.message.Message, addr: tuple[Any, ...]) -> None:
        reply = await self.server.forward(query)
        self._send(reply, addr, query.payload if query.edns >= 0 else 0)

    def _send(
        self, response: dns.message.Message, addr: tuple[Any, ...], payload: int | None = None
    ) -> None:
        """Send within the asker's UDP size: its EDNS payload (``request_payload``
        of a response made for its query), clamped to 512..1232."""
        limit = _udp_limit(response.request_payload if payload is None else payload)
        if self.transport is not None:
            with contextlib.suppress(OSError):
                self.transport.sendto(to_wire(response, limit), addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("internal DNS: UDP error %s", exc)


def _udp_limit(payload: int) -> int:
    """The largest UDP answer for an asker announcing ``payload`` (0: no EDNS)."""
    return max(UDP_DEFAULT_SIZE, min(payload, UDP_MAX_SIZE)) if payload else UDP_DEFAULT_SIZE


def to_wire(response: dns.message.Message, limit: int) -> bytes:
    """``response`` in at most ``limit`` bytes: when it does not fit, its question
    alone with TC set (the client asks again over TCP)."""
    try:
        return response.to_wire(max_size=limit, want_shuffle=False)
    except dns.exception.TooBig:
        truncated = dns.message.Message(id=response.id)
        truncated.flags = response.flags | dns.flags.TC
        truncated.set_rcode(response.rcode())
        truncated.question = list(response.question)
        return truncated.to_wire(max_size=limit)


def save_records(path: Path, records: InternalRecords) -> None:
    """Write the host's copy atomically (a reader sees the old or the new file). Blocking."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(records.to_json(), encoding="utf-8")
    os.replace(temporary, path)


def load_records(path: Path) -> InternalRecords:
    """The copy ``save_records`` wrote; empty records when there is none yet.
    Raises ``ValidationError`` when the file is damaged. Blocking."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return InternalRecords()
    return InternalRecords.from_json(text)


def main(argv: list[str] | None = None) -> None:
    """``python -m ferry.net.dns_server --records FILE [--listen ADDR] [--port N]
    [--region R] [--upstream HOST:PORT]``: serve a records copy until killed;
    SIGHUP reloads the file (a damaged file is logged and the old records kept).
    Runs on uvloop."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="Serve .internal DNS from a records copy.")
    parser.add_argument("--records", type=Path, required=True)
    parser.add_argument("--listen", default=str(DNS_ADDRESS))
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--region", default=None)
    parser.add_argument("--upstream", default=None, help="HOST:PORT of the resolver to forward to")
    args = parser.parse_args(argv)
    upstream = None
    if args.upstream:
        host, _, port = args.upstream.rpartition(":")
        upstream = (host.strip("[]"), int(port))
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    async def serve() -> None:
        server = InternalDnsServer(
            load_records(args.records), region=args.region, upstream=upstream
        )
        await server.start(args.listen, args.port)

        def reload() -> None:
            try:
                server.update(load_records(args.records))
            except FerryError as exc:
                log.error("internal DNS: keeping the old records: %s", exc)

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, reload)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)  # for the process that waits on us
        await stop.wait()
        await server.close()

    import uvloop  # as the edge: less work per datagram than the default loop

    uvloop.run(serve())


if __name__ == "__main__":
    main()
