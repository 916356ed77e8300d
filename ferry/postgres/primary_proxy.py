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


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass  # a side reset the connection: closing both ends below is all there is to do
    finally:
        writer.close()


class PrimaryForwarder:
    """The forwarder's state: the leader's address as last read."""

    def __init__(self, fetch: Callable[[], tuple[str, int] | None] = _fetch_leader) -> None:
        self.target: tuple[str, int] | None = None
        self._fetch = fetch  # blocking: run in a thread

    async def refresh(self) -> tuple[str, int] | None:
        self.target = await asyncio.to_thread(self._fetch)
        return self.target

    async def refresh_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(REFRESH_SECONDS)

    async def _connect(
        self, target: tuple[str, int] | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        if target is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.open_connection(*target), CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            return None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect(self.target)
        if upstream is None:  # the primary moved or died: ask Patroni again, once
            upstream = await self._connect(await self.refresh())
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def serve(port: int = LISTEN_PORT) -> None:
    forwarder = PrimaryForwarder()
    refresher = asyncio.create_task(forwarder.refresh_forever())
    server = await asyncio.start_server(forwarder.handle, host=None, port=port)
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
