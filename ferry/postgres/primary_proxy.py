"""Port 5432 of every Postgres member: a TCP forwarder to the current primary's Postgres.

Fly's Postgres puts HAProxy on 5432 (always the writable leader) and Postgres itself
on 5433. Ferry's image has no HAProxy, so each member runs this small asyncio
forwarder (started by the entrypoint, as user ``postgres``, on the image's own
``/usr/bin/python3``; standard library only):

- every ``REFRESH_SECONDS`` it reads Patroni's ``GET /cluster`` on the member's own
  REST API and keeps the address (``host``/``port`` Patroni advertises) of the
  member that is the *running* leader — Patroni's DCS decides, not this code;
- each accepted connection is piped to that address; if the connect fails (the
  primary just died), it reads ``/cluster`` again at once and tries the new
  leader once; with no leader known the connection is closed (the client retries);
- it listens on every address of the member (IPv4 and IPv6 6PN), port 5432.

So a client on ``<db>.internal:5432`` reaches the primary through whichever member
answers, and follows a failover within about a refresh period once Patroni has
promoted a replica. A member cut off from the DCS gets no ``/cluster`` answer and
refuses new connections rather than forwarding to a stale primary.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["LISTEN_PORT", "PrimaryForwarder", "leader_address", "main", "serve"]

LISTEN_PORT = 5432
REST_URL = "http://[::1]:8008/cluster"
REFRESH_SECONDS = 1.0
CONNECT_TIMEOUT = 5.0
_LEADER_ROLES = ("leader", "master", "primary")


def leader_address(cluster: Mapping[str, Any]) -> tuple[str, int] | None:
    """The running leader's ``(host, port)`` from Patroni's ``/cluster`` answer. Pure."""
    for member in cluster.get("members") or []:
        host, port = member.get("host"), member.get("port")
        leads = member.get("role") in _LEADER_ROLES and member.get("state") == "running"
        if leads and isinstance(host, str) and isinstance(port, int):
            return host, port
    return None


def _fetch_leader() -> tuple[str, int] | None:
    try:
        with urllib.request.urlopen(REST_URL, timeout=2) as answer:
            return leader_address(json.loads(answer.read()))
    except (OSError, ValueError):
        return None


class _Relay(asyncio.Protocol):
    """One side of a spliced connection: what it receives is written to its peer's transport.

    Protocol callbacks rather than streams: one ``recv`` and one ``send`` per message
    and no task switch, which is most of what a forwarder in Python can save (the
    rest is the kernel's cost of the extra TCP hop). Back-pressure: when a side's
    outgoing buffer is full its peer stops reading. A half-close is passed on; once
    both sides have sent EOF both are closed.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Relay | None = None
        self.early: list[bytes] = []  # received before the peer was linked
        self.got_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def link(self, peer: _Relay) -> None:
        """Start relaying to ``peer``: bytes (and an EOF) that came early go first."""
        self.peer = peer
        if peer.transport is None:
            return
        if self.early:
            peer.transport.write(b"".join(self.early))
            self.early = []
        if self.got_eof:
            self._pass_eof(peer.transport, peer)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
            return
        # Not linked yet (the pause in connection_made may not hold on every loop):
        # hold this read and stop reading until the other side is connected.
        self.early.append(data)
        if self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self.got_eof = True
        peer = self.peer
        if peer is None:
            return True  # passed on when linked
        if peer.transport is None:
            return None
        return self._pass_eof(peer.transport, peer)

    def _pass_eof(self, out: asyncio.Transport, peer: _Relay) -> bool | None:
        if peer.got_eof or not out.can_write_eof():
            out.close()  # both directions are done: close both ends
            if self.transport is not None:
                self.transport.close()
            return None
        out.write_eof()
        return True  # keep the other direction open

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()  # after sending what it still buffers

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Client(_Relay):
    """A connection accepted on 5432: not read until the primary is connected."""

    def __init__(self, forwarder: PrimaryForwarder) -> None:
        super().__init__()
        self.forwarder = forwarder

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        transport.pause_reading()  # type: ignore[attr-defined]
        self.forwarder.start_linking(self)


class PrimaryForwarder:
    """The forwarder's state: the leader's address as last read; ``protocol`` makes the
    listener's connections (``loop.create_server(forwarder.protocol, …)``)."""

    def __init__(self, fetch: Callable[[], tuple[str, int] | None] = _fetch_leader) -> None:
        self.target: tuple[str, int] | None = None
        self._fetch = fetch  # blocking: run in a thread
        self._linking: set[asyncio.Task[None]] = set()

    async def refresh(self) -> tuple[str, int] | None:
        self.target = await asyncio.to_thread(self._fetch)
        return self.target

    async def refresh_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(REFRESH_SECONDS)

    def protocol(self) -> asyncio.Protocol:
        """A new accepted connection's protocol."""
        return _Client(self)

    def start_linking(self, client: _Client) -> None:
        task = asyncio.get_running_loop().create_task(self._link(client))
        self._linking.add(task)  # a reference, so the task is not collected midway
        task.add_done_callback(self._linking.discard)

    async def _connect(self, target: tuple[str, int] | None) -> _Relay | None:
        if target is None:
            return None
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await asyncio.wait_for(
                loop.create_connection(_Relay, *target), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            return None
        return upstream

    async def _link(self, client: _Client) -> None:
        upstream = await self._connect(self.target)
        if upstream is None:  # the primary moved or died: ask Patroni again, once
            upstream = await self._connect(await self.refresh())
        if client.transport is None or client.transport.is_closing():
            if upstream is not None and upstream.transport is not None:
                upstream.transport.close()  # the client left while we connected
            return
        if upstream is None:
            client.transport.close()
            return
        upstream.link(client)
        client.link(upstream)
        if client.transport is not None and not client.got_eof:
            client.transport.resume_reading()


async def serve(port: int = LISTEN_PORT) -> None:
    forwarder = PrimaryForwarder()
    refresher = asyncio.create_task(forwarder.refresh_forever())
    server = await asyncio.get_running_loop().create_server(
        forwarder.protocol, host=None, port=port
    )
    async with server:
        await asyncio.gather(server.serve_forever(), refresher)


def main() -> int:
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"ferry-postgres: primary forwarder: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
