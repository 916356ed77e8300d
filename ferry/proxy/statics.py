"""``[[statics]]`` at the edge: GET and HEAD under a ``url_prefix`` answered from the image.

``StaticsServer.serve`` is the one call the request path makes (from
``Exchange.start``): it returns False at once for anything that is not a GET
or HEAD under a ``url_prefix`` of the app, so the exchange routes on as
before. Otherwise it takes the exchange over: the image's files under
``guest_path`` come from the edge's disk copy (``static_cache``; fetched on
first use, kept across restarts, so statics work while the control plane is
down), and a path with no file there — or an image that cannot be fetched —
falls through to the app, as on Fly. File reads run in a thread, in chunks,
with the client's back-pressure: a large file never blocks the event loop.

Lookups are remembered (the copy of an image never changes): a repeated
request for a small file is answered from memory in the next loop turn, and a
repeated miss goes to the app with no lookup at all. The decisions (prefix
matching, path resolution and traversal refusal, headers, 304) are pure
functions in ``static_rules``, tested alone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ferry.errors import FerryError
from ferry.model.machine_statics import StaticConfig
from ferry.proxy.headers import build_response_head
from ferry.proxy.routes import AppStatics, RouteTable
from ferry.proxy.static_cache import StaticCache
from ferry.proxy.static_rules import (
    CHUNK,
    CopyMissing,
    StaticFile,
    Traversal,
    etag,
    find_file,
    header_value,
    match_prefix,
    not_modified,
    request_path,
    response_headers,
    split_path,
)

if TYPE_CHECKING:
    from ferry.proxy.exchange import Exchange

__all__ = ["FETCH_WAIT_SECONDS", "StaticsServer"]

log = logging.getLogger(__name__)

_FETCH_RETRY_SECONDS = 10.0  # after a failed fetch, requests go to the app this long
#: A request waits this long for a first fetch of its image's files, then goes to the app.
FETCH_WAIT_SECONDS = 10.0
_WRITE_PAUSE_POLL = (0.002, 0.1)  # first and longest pause while the client's socket is full
#: Bounds of the remembered lookups (cleared whole when either is passed).
MEMO_ENTRIES, MEMO_BYTES = 4096, 32 * 1024 * 1024

_LookupKey = tuple[Path, tuple[str, ...], str | None]


class StaticsServer:
    """Serves the statics of every app in the route table. Event-loop only."""

    def __init__(self, table: Callable[[], RouteTable], cache: StaticCache) -> None:
        self.table = table
        self.cache = cache
        self._seen: RouteTable | None = None
        self._ready: set[Path] = set()
        self._fetching: dict[Path, asyncio.Future[Path]] = {}
        self._failed: dict[Path, float] = {}
        self._memo: dict[_LookupKey, StaticFile | None] = {}
        self._memo_bytes = 0

    def serve(self, exchange: Exchange) -> bool:
        """Take ``exchange`` over if it asks for a static path of its app; else False."""
        if exchange.method != b"GET" and exchange.method != b"HEAD":
            return False
        table = self.table()
        site = table.statics.get(exchange.app)
        if table is not self._seen:
            self._seen = table
            self._table_changed(table)
        if site is None:
            return False
        matched = match_prefix(site.statics, request_path(exchange.request.head))
        if matched is None:
            return False
        static, rest = matched
        try:
            segments = split_path(rest)
        except Traversal:
            exchange.fail(400, "the path leaves the static directory")
            return True
        if segments is None:
            return False
        loop = asyncio.get_running_loop()
        root = self.cache.path(site.digest, static.guest_path)
        key = (root, segments, static.index_document)
        if root in self._ready and key in self._memo:
            known = self._memo[key]
            if known is None:
                return False  # a known miss: the app answers
            if known.body is not None:
                # Next turn, not now: the request's end has been read by then, so the
                # connection stays open for the next one.
                loop.call_soon(self._answer_from_memory, exchange, site, known)
                return True
        exchange.task = loop.create_task(self._serve(exchange, site, static, key))
        return True

    def _remember(self, key: _LookupKey, found: StaticFile | None) -> None:
        size = len(found.body) if found is not None and found.body is not None else 0
        if len(self._memo) >= MEMO_ENTRIES or self._memo_bytes + size > MEMO_BYTES:
            self._memo.clear()
            self._memo_bytes = 0
        self._memo[key] = found
        self._memo_bytes += size

    def _answer_from_memory(self, exchange: Exchange, site: AppStatics, found: StaticFile) -> None:
        if not exchange.done:
            self._respond(exchange, site, found)
            exchange.finish()

    def _table_changed(self, table: RouteTable) -> None:
        """Fetch the copies the table needs ahead of requests; drop those it no longer does."""
        for site in table.statics.values():
            for static in site.statics:
                self._root(site, static).add_done_callback(_ignore_failure)
        digests = {site.digest for site in table.statics.values()}
        self._ready = {p for p in self._ready if f"sha256:{p.parent.name}" in digests}
        self._failed = {
            p: t for p, t in self._failed.items() if f"sha256:{p.parent.name}" in digests
        }
        # A copy never changes: what was looked up in one still in use stays true.
        self._memo = {k: f for k, f in self._memo.items() if k[0] in self._ready}
        self._memo_bytes = sum(len(f.body) for f in self._memo.values() if f and f.body)
        if table.apps:  # an empty table (nothing loaded yet) keeps what is on disk
            asyncio.get_running_loop().run_in_executor(None, self._prune, table, digests)

    def _prune(self, table: RouteTable, digests: set[str]) -> None:
        if self._seen is table:  # a newer table may need what this one does not
            self.cache.prune(digests)

    def _root(self, site: AppStatics, static: StaticConfig) -> asyncio.Future[Path]:
        """The copy's directory: ready, being fetched, or a fetch started now."""
        loop = asyncio.get_running_loop()
        path = self.cache.path(site.digest, static.guest_path)
        if path in self._ready:
            future: asyncio.Future[Path] = loop.create_future()
            future.set_result(path)
            return future
        pending = self._fetching.get(path)
        if pending is not None:
            return pending
        if self._failed.get(path, 0.0) > time.monotonic():
            future = loop.create_future()
            future.set_exception(FerryError(f"fetching the statics of {site.image} failed"))
            return future
        fetch = loop.run_in_executor(
            None, self.cache.ensure, site.image, site.digest, static.guest_path
        )
        self._fetching[path] = fetch

        def fetched(done: asyncio.Future[Path]) -> None:
            self._fetching.pop(path, None)
            if done.cancelled():
                return
            error = done.exception()
            if error is None:
                self._ready.add(path)
            else:
                log.warning(
                    "statics of %s unavailable, requests go to the app: %s", site.image, error
                )
                self._failed[path] = time.monotonic() + _FETCH_RETRY_SECONDS

        fetch.add_done_callback(fetched)
        return fetch

    async def _serve(
        self, exchange: Exchange, site: AppStatics, static: StaticConfig, key: _LookupKey
    ) -> None:
        loop = asyncio.get_running_loop()
        root, segments, index_document = key
        found: StaticFile | None = None
        for _ in range(2):  # a copy deleted under us is fetched again, once
            try:
                fetch = asyncio.shield(self._root(site, static))
                await asyncio.wait_for(fetch, FETCH_WAIT_SECONDS)
                found = await loop.run_in_executor(None, find_file, root, segments, index_document)
                self._remember(key, found)
                break
            except (FerryError, OSError, TimeoutError):
                break  # no copy (yet): the app answers, as it would without statics
            except CopyMissing:
                self._ready.discard(root)
        if found is None:
            exchange.dispatch()  # a miss falls through to the app, as on Fly
            return
        if self._respond(exchange, site, found):
            await self._stream(exchange, found)
        if not exchange.done:
            exchange.finish()

    def _respond(self, exchange: Exchange, site: AppStatics, found: StaticFile) -> bool:
        """Write the answer's head (and a small body); True when the body must be streamed."""
        head = exchange.request.head
        unchanged = not_modified(
            header_value(head, b"if-none-match"),
            header_value(head, b"if-modified-since"),
            etag(site.digest, found.relative),
            found.mtime,
        )
        status, reason = (304, b"Not Modified") if unchanged else (200, b"OK")
        with_body = not unchanged and exchange.method == b"GET"
        answer = build_response_head(
            status,
            reason,
            response_headers(site.digest, found, not_modified_=unchanged),
            exchange.edge.headers,
            exchange.request_id,
            has_body=with_body,
            client_http11=exchange.http11,
            client_keep_alive=exchange.keep_alive,
        )
        exchange.status = status
        exchange.responding = True
        if not with_body:
            exchange.client.write(answer.head)
            return False
        if found.body is None:
            exchange.client.write(answer.head)
            return True
        exchange.client.write(answer.head + found.body)
        exchange.bytes_out += len(found.body)
        return False

    async def _stream(self, exchange: Exchange, found: StaticFile) -> None:
        """Send a large file in chunks read in a thread, waiting while the client is slow."""
        loop = asyncio.get_running_loop()
        client = exchange.client
        fd = await loop.run_in_executor(None, os.open, found.path, os.O_RDONLY)
        try:
            offset = 0
            while offset < found.size and not exchange.done:
                chunk = await loop.run_in_executor(None, os.pread, fd, CHUNK, offset)
                if not chunk:  # the file shrank: the promised length cannot be kept
                    client.abort()
                    return
                client.write(chunk)
                offset += len(chunk)
                exchange.bytes_out += len(chunk)
                # The connection tells only an upstream when its socket drains: poll,
                # backing off, while it is full.
                pause, longest = _WRITE_PAUSE_POLL
                while client.write_paused and not client.closing and not exchange.done:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, longest)
        finally:
            os.close(fd)


def _ignore_failure(future: asyncio.Future[Path]) -> None:
    if not future.cancelled():
        future.exception()  # logged by the fetch's own callback
