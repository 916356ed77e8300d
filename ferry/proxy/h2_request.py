"""An HTTP/2 request's header list, checked (RFC 9113 8.2-8.3) and written as an HTTP/1.1 head.

Each HTTP/2 stream goes through the edge as an HTTP/1.1 request would (see
``ferry.proxy.h2_stream``): this module is the pure translation in front of
that. ``translate_request`` refuses what RFC 9113 calls a malformed request
(the stream is then reset with PROTOCOL_ERROR) and otherwise returns the
HTTP/1.1 request head the edge's own parser reads: ``:method`` and ``:path``
make the request line, ``:authority`` becomes ``Host``, cookie crumbs are
joined with ``"; "`` (RFC 9113 8.2.3), and a body whose length is not
declared is sent chunked. The head always says ``Connection: close``: one
stream carries one request, and the close tells the stream its answer is
complete. What the checks refuse cannot reach the HTTP/1.1 text: no CR, LF or
NUL in any value, no whitespace or control byte in the request line, names
that are lowercase tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["CONNECTION_SPECIFIC", "MalformedRequest", "TranslatedRequest", "translate_request"]

#: Connection-specific fields: a request carrying one is malformed (RFC 9113 8.2.2).
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path"))
# A lowercase token (RFC 9110 5.6.2); uppercase names are malformed in HTTP/2.
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")
_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
# Bytes that cannot appear in a request target or authority written on a request line.
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f]")


class MalformedRequest(ValueError):
    """The stream's headers are not a well-formed HTTP/2 request; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TranslatedRequest:
    """The HTTP/1.1 head of one stream's request and how its body is framed."""

    __slots__ = ("chunked", "head", "method")

    def __init__(self, head: bytes, method: bytes, chunked: bool) -> None:
        self.head = head  # request line + headers, ending with the blank line
        self.method = method
        self.chunked = chunked  # DATA frames are sent as chunks (no content-length came)


def translate_request(
    headers: Iterable[tuple[bytes, bytes]], *, end_stream: bool
) -> TranslatedRequest:
    """The HTTP/1.1 request head for an HTTP/2 request's decoded header list.

    ``end_stream``: the HEADERS frame ended the stream (the request has no
    body). Raises ``MalformedRequest`` for a request RFC 9113 calls malformed
    (the caller resets the stream with PROTOCOL_ERROR) or one the edge does
    not serve over HTTP/2 (CONNECT and extended CONNECT: no tunnels).
    Pure: no limits are applied here; the edge's HTTP/1.1 parser applies them
    to the head (431 for too large, 400 for a bad Content-Length, 404 …).
    """
    method = scheme = path = authority = b""
    host = b""
    seen_regular = False
    cookies: list[bytes] = []
    lines: list[bytes] = []
    has_length = False
    for name, value in headers:
        if name[:1] == b":":
            if seen_regular:
                raise MalformedRequest("a pseudo-header came after a regular header")
            if name not in _PSEUDO:
                raise MalformedRequest(f"unsupported pseudo-header {name.decode('latin-1')}")
            if name == b":method":
                if method:
                    raise MalformedRequest("the :method pseudo-header came twice")
                method = value
            elif name == b":scheme":
                if scheme:
                    raise MalformedRequest("the :scheme pseudo-header came twice")
                scheme = value
            elif name == b":path":
                if path:
                    raise MalformedRequest("the :path pseudo-header came twice")
                path = value
            else:
                if authority:
                    raise MalformedRequest("the :authority pseudo-header came twice")
                authority = value
            continue
        seen_regular = True
        if _NAME.match(name) is None:
            raise MalformedRequest(f"invalid header name {name!r}")
        if _BAD_VALUE.search(value) is not None:
            raise MalformedRequest(f"header {name.decode()} has a CR, LF or NUL in its value")
        if value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"):
            raise MalformedRequest(f"header {name.decode()} has whitespace around its value")
        if name in CONNECTION_SPECIFIC:
            raise MalformedRequest(f"connection-specific header {name.decode()} in HTTP/2")
        if name == b"te":
            if value != b"trailers":
                raise MalformedRequest("the te header may only say trailers in HTTP/2")
            continue  # hop-by-hop: not forwarded
        if name == b"cookie":
            cookies.append(value)
            continue
        if name == b"host":
            host = value
            continue
        if name == b"content-length":
            has_length = True
        lines += (name, b": ", value, b"\r\n")
    if method == b"CONNECT":
        raise MalformedRequest("CONNECT is not supported by the edge over HTTP/2")
    if not method or not scheme or not path:
        raise MalformedRequest("a request needs the :method, :scheme and :path pseudo-headers")
    if _METHOD.match(method) is None:
        raise MalformedRequest("the :method pseudo-header is not a token")
    if _BAD_TARGET.search(path) is not None or not (path[:1] == b"/" or path == b"*"):
        raise MalformedRequest("the :path pseudo-header is not a valid request target")
    if authority:
        if _BAD_TARGET.search(authority) is not None or b"@" in authority:
            raise MalformedRequest("the :authority pseudo-header is not a valid host")
        host = authority  # it wins over a host header (RFC 9113 8.3.1), which is dropped
    elif host and _BAD_TARGET.search(host) is not None:
        raise MalformedRequest("the host header is not a valid host")
    head = [method, b" ", path, b" HTTP/1.1\r\n"]
    if host:
        head += (b"host: ", host, b"\r\n")
    head += lines
    if cookies:
        head += (b"cookie: ", b"; ".join(cookies), b"\r\n")
    chunked = not end_stream and not has_length
    if chunked:
        head.append(b"transfer-encoding: chunked\r\n")
    head.append(b"connection: close\r\n\r\n")
    return TranslatedRequest(b"".join(head), method, chunked)
