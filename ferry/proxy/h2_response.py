"""The edge's HTTP/1.1 answer for one stream, read back into HTTP/2 header lists and body bytes.

The request path (``Exchange``, detours, statics, error pages) writes an
HTTP/1.1 response for every request; for a stream of an HTTP/2 connection
``ResponseReader`` parses those bytes with httptools and tells its
``ResponseSink`` what to send: an interim 100 (the answer to
``expect: 100-continue``), the final head, body bytes (chunked framing
removed), the end. ``h2_response_headers`` is the pure header translation:
names lowercased, hop-by-hop fields and those the ``Connection`` header
names removed (RFC 9113 8.2.2), the status as ``:status``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import httptools
from hpack import NeverIndexedHeaderTuple

__all__ = ["ResponseReader", "ResponseSink", "h2_response_headers"]

_HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te",
     b"trailer")
)  # fmt: skip
_STATUS = {code: str(code).encode() for code in range(100, 600)}
# Unique per response: kept out of the HPACK dynamic table, where each would
# only push out the fields that repeat (and make every lookup longer).
_UNIQUE = frozenset((b"fly-request-id", b"date", b"etag", b"last-modified", b"set-cookie"))


def h2_response_headers(
    status: int, headers: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The HTTP/2 header list of a response: ``:status`` first, fields lowercased, no
    connection-specific fields. Pure."""
    named: frozenset[bytes] = frozenset()
    for name, value in headers:
        if name.lower() == b"connection":
            named = frozenset(t.strip().lower() for t in value.split(b","))
    out = [(b":status", _STATUS.get(status) or str(status).encode())]
    for name, value in headers:
        lower = name.lower()
        if lower in _HOP_BY_HOP or lower in named:
            continue
        out.append(NeverIndexedHeaderTuple(lower, value) if lower in _UNIQUE else (lower, value))
    return out


class ResponseSink(Protocol):
    """What a ``ResponseReader`` reports, in order."""

    def interim(self, headers: list[tuple[bytes, bytes]]) -> None:
        """A 100 Continue (other 1xx answers are not reported)."""

    def head(self, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        """The final response head; ``end_stream``: no body follows (a HEAD request)."""

    def body(self, data: bytes) -> None:
        """Body bytes, framing removed."""

    def complete(self) -> None:
        """The response ended."""


class ResponseReader:
    """Parses one stream's HTTP/1.1 response bytes as they are written; single use.

    ``head_only``: the request was a HEAD, so the response has no body whatever
    its headers say (httptools cannot know): everything after the head is
    ignored. ``feed`` raises ``httptools.HttpParserError`` for bytes that are
    not an HTTP/1.1 response (the edge wrote them: the caller resets the stream).
    """

    __slots__ = ("done", "feed", "head_only", "headers", "parser", "sink", "started", "status")

    def __init__(self, sink: ResponseSink, *, head_only: bool) -> None:
        self.sink = sink
        self.head_only = head_only
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.started = False  # the final head was reported
        self.done = False  # the end was reported
        self.parser = httptools.HttpResponseParser(self)
        self.feed: Callable[[bytes], None] = self.parser.feed_data

    def write(self, data: bytes) -> None:
        """Parse more of the response; bytes after its end are ignored."""
        if not self.done:
            self.feed(data)

    # httptools callbacks ----------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        headers, self.headers = self.headers, []
        if status < 200:
            self.status = status
            if status == 100:
                self.sink.interim(h2_response_headers(status, headers))
            return
        self.status = status
        self.started = True
        if self.head_only:
            self.done = True
            self.sink.head(h2_response_headers(status, headers), True)
            return
        self.sink.head(h2_response_headers(status, headers), False)

    def on_body(self, body: bytes) -> None:
        if not self.done:
            self.sink.body(body)

    def on_message_complete(self) -> None:
        if self.status < 200 or self.done:
            return  # the end of an interim answer: the final one follows
        self.done = True
        self.sink.complete()
