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

The decisions (prefix matching, path resolution and traversal refusal,
headers, 304) are pure functions, tested alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from ferry.errors import FerryError
from ferry.model.machine import StaticConfig
from ferry.proxy.headers import build_response_head
from ferry.proxy.routes import AppStatics, RouteTable
from ferry.proxy.static_cache import StaticCache

if TYPE_CHECKING:
    from ferry.proxy.exchange import Exchange

__all__ = [
    "CACHE_CONTROL",
    "StaticFile",
    "StaticsServer",
    "Traversal",
    "match_prefix",
    "not_modified",
    "request_path",
    "response_headers",
    "split_path",
]

log = logging.getLogger(__name__)

#: An hour: an unfingerprinted file (index.html, /logo.png) reaches browsers and
#: shared caches within an hour of a deploy, while every hit in between costs no
#: request; after that a revalidation is a cheap 304 (the ETag is per image).
CACHE_CONTROL = b"public, max-age=3600"
CHUNK = 256 * 1024
_FETCH_RETRY_SECONDS = 10.0  # after a failed fetch, requests go to the app this long
_WRITE_PAUSE_POLL = 0.005


class Traversal(Exception):
    """The request path leaves the static directory (``..`` after decoding)."""


@dataclass(frozen=True)
class StaticFile:
    """A file found for a request: where it is, its relative path, size and mtime."""

    path: Path
    relative: str
    size: int
    mtime: float
    body: bytes | None = None  # the whole file, read with the lookup when it is small


def request_path(head: bytes) -> bytes:
    """The path of the request line at the start of ``head`` (no query string). Pure."""
    line = head[: head.find(b"\r\n")]
    target = line.split(b" ", 2)[1] if line.count(b" ") >= 2 else b""
    return target.split(b"?", 1)[0].split(b"#", 1)[0]


def match_prefix(
    statics: tuple[StaticConfig, ...], path: bytes
) -> tuple[StaticConfig, bytes] | None:
    """The static whose ``url_prefix`` is the longest prefix of ``path``, and the rest.

    A prefix matches whole segments: ``/static`` covers ``/static`` and
    ``/static/a.css`` but not ``/statics.css``; ``/static/`` covers what is under
    it. Pure.
    """
    best: tuple[StaticConfig, bytes] | None = None
    longest = -1
    for static in statics:
        prefix = static.url_prefix.encode()
        whole_segments = (
            prefix.endswith(b"/")
            or len(path) == len(prefix)
            or path[len(prefix) : len(prefix) + 1] == b"/"
        )
        if path.startswith(prefix) and whole_segments and len(prefix) > longest:
            best, longest = (static, path[len(prefix) :]), len(prefix)
    return best


def split_path(rest: bytes) -> tuple[str, ...] | None:
    """The file path segments of the part of a URL path after the prefix. Pure.

    Percent-decoded as UTF-8; empty and ``.`` segments are dropped. Raises
    ``Traversal`` for a ``..`` segment (also encoded, ``%2e%2e``). Returns None
    for what cannot name a file of the copy (invalid UTF-8, a NUL or a
    backslash): such a request goes to the app.
    """
    try:
        decoded = unquote_to_bytes(rest).decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in decoded or "\\" in decoded:
        return None
    segments = tuple(s for s in decoded.split("/") if s not in ("", "."))
    if ".." in segments:
        raise Traversal(decoded)
    return segments


def find_file(
    root: Path, segments: tuple[str, ...], index_document: str | None
) -> StaticFile | None:
    """The regular file ``segments`` names under ``root`` (a directory's
    ``index_document`` when it names a directory), or None. Blocking (stats; reads
    a small file whole). The copy holds no symbolic links, so nothing found is
    outside ``root``."""
    path = root.joinpath(*segments)
    relative = "/".join(segments)
    try:
        info = path.stat()
        if path.is_dir():
            if index_document is None:
                return None
            path = path / index_document
            relative = f"{relative}/{index_document}" if relative else index_document
            info = path.stat()
        if not path.is_file():
            return None
        body = path.read_bytes() if info.st_size <= CHUNK else None
    except OSError:  # missing, not a directory, unreadable: not a file the edge serves
        return None
    return StaticFile(path, relative, info.st_size, info.st_mtime, body)


def etag(digest: str, relative: str) -> bytes:
    """A strong ETag: the file of one image never changes. Pure."""
    return b'"%s"' % hashlib.sha256(f"{digest}:{relative}".encode()).hexdigest()[:32].encode()


def content_type(relative: str) -> bytes:
    """The Content-Type by file extension (text gets ``charset=utf-8``). Pure."""
    kind, _ = mimetypes.guess_type(relative, strict=False)
    if kind is None:
        return b"application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
        return f"{kind}; charset=utf-8".encode()
    return kind.encode()


def header_value(head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lowercase) in a request head, or None. Pure."""
    for line in head.split(b"\r\n")[1:]:
        field, sep, value = line.partition(b":")
        if sep and field.strip().lower() == name:
            return value.strip()
    return None


def not_modified(
    if_none_match: bytes | None, if_modified_since: bytes | None, tag: bytes, mtime: float
) -> bool:
    """Whether a GET/HEAD with these validators gets a 304 (RFC 9110 13.1). Pure.

    If-None-Match wins when present (weak comparison, ``*`` matches);
    If-Modified-Since counts only without it.
    """
    if if_none_match is not None:
        wanted = {t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")}
        return b"*" in wanted or tag in wanted
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since.decode("latin-1")).timestamp()
        except (TypeError, ValueError, IndexError):
            return False
        return int(mtime) <= since
    return False


def response_headers(
    digest: str, found: StaticFile, *, not_modified_: bool
) -> list[tuple[bytes, bytes]]:
    """The headers of a static answer (200 or 304). Pure."""
    headers = [
        (b"ETag", etag(digest, found.relative)),
        (b"Last-Modified", formatdate(found.mtime, usegmt=True).encode()),
        (b"Cache-Control", CACHE_CONTROL),
    ]
    if not not_modified_:
        headers.append((b"Content-Type", content_type(found.relative)))
        headers.append((b"Content-Length", str(found.size).encode()))
    return headers


class StaticsServer:
    """Serves the statics of every app in the route table. Event-loop only."""

    def __init__(self, table: Callable[[], RouteTable], cache: StaticCache) -> None:
        self.table = table
        self.cache = cache
        self._seen: RouteTable | None = None
        self._ready: set[Path] = set()
        self._fetching: dict[Path, asyncio.Future[Path]] = {}
        self._failed: dict[Path, float] = {}

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
        exchange.task = loop.create_task(self._serve(exchange, site, static, segments))
        return True

    def _table_changed(self, table: RouteTable) -> None:
        """Fetch the copies the table needs ahead of requests; drop those it no longer does."""
        for site in table.statics.values():
            for static in site.statics:
                self._root(site, static).add_done_callback(_ignore_failure)
        digests = {site.digest for site in table.statics.values()}
        self._ready = {p for p in self._ready if f"sha256:{p.parent.name}" in digests}
        if table.apps:  # an empty table (nothing loaded yet) keeps what is on disk
            asyncio.get_running_loop().run_in_executor(None, self.cache.prune, digests)

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
        self, exchange: Exchange, site: AppStatics, static: StaticConfig, segments: tuple[str, ...]
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            root = await asyncio.shield(self._root(site, static))
        except FerryError:
            exchange.dispatch()  # no copy: the app answers, as it would without statics
            return
        found = await loop.run_in_executor(None, find_file, root, segments, static.index_document)
        if found is None:
            exchange.dispatch()  # a miss falls through to the app, as on Fly
            return
        head = exchange.request.head
        tag = etag(site.digest, found.relative)
        unchanged = not_modified(
            header_value(head, b"if-none-match"),
            header_value(head, b"if-modified-since"),
            tag,
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
        client = exchange.client
        if not with_body:
            client.write(answer.head)
        elif found.body is not None:
            client.write(answer.head + found.body)
            exchange.bytes_out += len(found.body)
        else:
            client.write(answer.head)
            await self._stream(exchange, found)
        if not exchange.done:
            exchange.finish()

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
                # The connection pauses only upstream reads on a full socket; poll briefly.
                while client.write_paused and not client.closing and not exchange.done:
                    await asyncio.sleep(_WRITE_PAUSE_POLL)
        finally:
            os.close(fd)


def _ignore_failure(future: asyncio.Future[Path]) -> None:
    if not future.cancelled():
        future.exception()  # logged by the fetch's own callback
