"""Header work of the HTTP edge: the request head sent upstream, the response head, edge answers.

Pure functions over bytes, built for the hot path: one pass over the
headers, constant parts precomputed once per edge (``EdgeHeaders``). Host ->
app and request ids are in ``naming.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "HOP",
    "HOP_REFUSED",
    "TERMINATOR",
    "EdgeHeaders",
    "RequestHead",
    "ResponseHead",
    "build_request_head",
    "build_response_head",
    "https_redirect",
    "simple_response",
]

# Between edges over the backhaul only (a client's or an app's copy is dropped):
# the machine the first edge picked, and the answer "no machine here took it".
HOP = b"Ferry-Hop"
HOP_REFUSED = b"Ferry-Hop-Refused"
# Beside Ferry-Hop: the app the first edge routed to (a Flycast request names it by
# address, not by Host, so the next edge cannot read it off the Host header).
HOP_APP = b"Ferry-Hop-App"
# What an edge sets on the way in; from a backhaul peer (trusted) they pass through.
_EDGE_SET = frozenset(
    {
        b"fly-client-ip",
        b"fly-region",
        b"fly-forwarded-port",
        b"fly-request-id",
        b"fly-replay-src",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-forwarded-ssl",
        b"via",
    }
)
# Hop-by-hop headers of both directions.
_HOP_BY_HOP = (b"connection", b"keep-alive", b"proxy-connection", b"trailer", b"upgrade")
# Hop-by-hop, and what only the edge may set (a client must not spoof it).
_DROP_REQUEST = frozenset((*_HOP_BY_HOP, b"te", b"expect")) | _EDGE_SET
# Hop-by-hop (the edge frames the body itself), and what the edge adds or acts on.
_DROP_RESPONSE = frozenset(
    (*_HOP_BY_HOP, b"transfer-encoding", b"server", b"via", b"fly-request-id", b"fly-replay",
     HOP_REFUSED.lower())
)  # fmt: skip
TERMINATOR = b"0\r\n\r\n"  # the last chunk of a chunked body
_REASONS = {
    200: b"OK",
    301: b"Moved Permanently",
    308: b"Permanent Redirect",
    400: b"Bad Request",
    404: b"Not Found",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


@dataclass(frozen=True)
class EdgeHeaders:
    """Constant header bytes of one edge listener (region, public port, http or https).

    ``tls``: the listener terminates TLS (``X-Forwarded-Proto: https``,
    ``X-Forwarded-Ssl: on``); otherwise ``http`` and ``off``.
    """

    region: str
    port: int
    tls: bool = False
    request_block: bytes = field(init=False)
    response_block: bytes = field(init=False)
    request_tail: bytes = field(init=False)  # after the request id, to the blank line
    response_tail: bytes = field(init=False)

    def __post_init__(self) -> None:
        port = str(self.port).encode()
        proto = b"https\r\nX-Forwarded-Ssl: on" if self.tls else b"http\r\nX-Forwarded-Ssl: off"
        block = (
            b"X-Forwarded-Proto: " + proto + b"\r\nX-Forwarded-Port: " + port + b"\r\n"
            b"Fly-Forwarded-Port: " + port + b"\r\n"
            b"Fly-Region: " + self.region.encode() + b"\r\nVia: 1.1 ferry\r\n"
        )
        response = b"Via: 1.1 ferry\r\nServer: Ferry\r\n"
        object.__setattr__(self, "request_block", block)
        object.__setattr__(self, "response_block", response)
        object.__setattr__(self, "request_tail", b"\r\n" + block + b"\r\n")
        object.__setattr__(self, "response_tail", b"\r\n" + response + b"\r\n")


# RequestHead and ResponseHead are made per request: plain classes, not dataclasses,
# because a dataclass's generated __init__ runs interpreted even when compiled.
class RequestHead:
    """What the edge needs to know about a client request, read in the same pass."""

    __slots__ = (
        "chunked", "content_length", "expect_continue", "force_instance", "force_region", "head",
        "hop", "hop_app", "host", "prefer_instance", "prefer_region", "steered", "upgrade",
    )  # fmt: skip

    def __init__(self, head: bytes) -> None:
        self.head = head  # request line + headers for the upstream, ending with the blank line
        self.host = b""
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.upgrade = False
        # Routing asked for by Fly's request headers; ``steered``: one of them came.
        self.steered = False
        self.prefer_region: str | None = None
        self.force_region: str | None = None
        self.force_instance: str | None = None
        self.prefer_instance: str | None = None
        self.hop: str | None = None  # from a backhaul peer: the machine it picked (steered)
        self.hop_app: str | None = None  # from a backhaul peer: the app it routed to


# What the edge does with a header, by name as sent. Names are looked up as
# they arrive (one dict probe, no lowercasing); ``_classify`` fills the cache.
(_PASS, _DROP, _HOST, _LENGTH, _TRANSFER, _XFF, _PREFER, _FORCE, _EXPECT, _UPGRADE, _HOP,
 _FORCE_REGION, _PREFER_INSTANCE, _HOP_APP) = range(14)  # fmt: skip
_REQUEST_KINDS = {
    b"host": _HOST,
    b"content-length": _LENGTH,
    b"transfer-encoding": _TRANSFER,
    b"x-forwarded-for": _XFF,
    b"fly-prefer-region": _PREFER,
    b"fly-force-instance-id": _FORCE,
    b"fly-force-region": _FORCE_REGION,
    b"fly-prefer-instance-id": _PREFER_INSTANCE,
    b"expect": _EXPECT,
    b"upgrade": _UPGRADE,
    HOP.lower(): _HOP,
    HOP_APP.lower(): _HOP_APP,
}
_RESPONSE_KINDS = {b"content-length": _LENGTH, b"transfer-encoding": _TRANSFER}
_CACHE_LIMIT = 2048  # distinct spellings remembered; a flood of made-up names just re-classifies


def _classify(
    name: bytes, cache: dict[bytes, int], kinds: dict[bytes, int], drop: frozenset[bytes]
) -> int:
    lower = name.lower()
    kind = kinds.get(lower, _DROP if lower in drop else _PASS)
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[name] = kind
    return kind


_request_kind: dict[bytes, int] = {}
_response_kind: dict[bytes, int] = {}


def _no_upgrade() -> bool:
    return False


def build_request_head(
    method: bytes,
    url: bytes,
    headers: list[tuple[bytes, bytes]],
    edge: EdgeHeaders,
    client_ip: bytes,
    request_id: bytes,
    *,
    upgrade: Callable[[], bool] = _no_upgrade,
    trusted: bool = False,
) -> RequestHead:
    """The upstream request head (HTTP/1.1, keep-alive) plus what the edge routes on.

    ``upgrade``: whether the parser saw a valid upgrade request (httptools'
    ``should_upgrade``); asked only when an Upgrade header came.

    ``trusted``: the request comes from another edge over the backhaul; its
    forwarding headers (X-Forwarded-For, Fly-Client-IP, Fly-Region,
    Fly-Request-Id …) are the first edge's and pass through unchanged.
    Raises ``ValueError`` for a ``Content-Length`` that is not a number.
    """
    info = RequestHead(b"")
    parts = [method, b" ", url, b" HTTP/1.1\r\n"]
    forwarded_for = client_ip
    upgrade_to = b""
    kinds = _request_kind
    for name, value in headers:
        kind = kinds.get(name)
        if kind is None:
            kind = _classify(name, kinds, _REQUEST_KINDS, _DROP_REQUEST)
        if kind == _PASS:
            _add(parts, name, value)
            continue
        if kind == _DROP:
            if trusted and name.lower() in _EDGE_SET:
                _add(parts, name, value)
            continue
        if kind == _HOST:
            info.host = value
        elif kind == _LENGTH:
            info.content_length = int(value)
        elif kind == _TRANSFER:
            info.chunked = value.lower().endswith(b"chunked")
        elif kind == _XFF:
            if trusted:
                _add(parts, name, value)
                continue
            forwarded_for = value + b", " + client_ip
            continue
        elif kind == _EXPECT:
            info.expect_continue = value.lower() == b"100-continue"
            continue
        elif kind == _UPGRADE:
            upgrade_to = value
            continue
        elif kind == _PREFER:
            info.prefer_region = value.decode("latin-1").strip().lower() or None
            info.steered = True
        elif kind == _FORCE:
            info.force_instance = value.decode("latin-1").strip() or None
            info.steered = True
        elif kind == _FORCE_REGION:
            info.force_region = value.decode("latin-1").strip().lower() or None
            info.steered = True
        elif kind == _PREFER_INSTANCE:
            info.prefer_instance = value.decode("latin-1").strip() or None
            info.steered = True
        elif kind == _HOP:
            if trusted:
                info.hop = value.decode("latin-1").strip() or None
                info.steered = True
            continue
        elif kind == _HOP_APP:
            if trusted:
                info.hop_app = value.decode("latin-1").strip() or None
            continue
        _add(parts, name, value)
    if upgrade_to and upgrade():
        info.upgrade = True
        parts += (b"Connection: Upgrade\r\nUpgrade: ", upgrade_to, b"\r\n")
    if trusted:
        parts.append(b"\r\n")
        info.head = b"".join(parts)
        return info
    parts += (
        b"X-Forwarded-For: ",
        forwarded_for,
        b"\r\nFly-Client-IP: ",
        client_ip,
        b"\r\nFly-Request-Id: ",
        request_id,
        edge.request_tail,
    )
    info.head = b"".join(parts)
    return info


class ResponseHead:
    """The client's response head and how its body is framed."""

    __slots__ = (
        "chunked_out", "close_delimited", "content_length", "head", "hop_refused", "replay",
        "upstream_until_close",
    )  # fmt: skip

    def __init__(
        self,
        head: bytes,
        content_length: int | None,
        chunked_out: bool,
        close_delimited: bool,
        replay: bytes | None,
        upstream_until_close: bool = False,
        hop_refused: bool = False,
    ) -> None:
        self.head = head  # status line + headers for the client, ending with the blank line
        self.content_length = content_length
        self.chunked_out = chunked_out  # the edge chunk-encodes the body for the client
        # The body ends when the upstream closes; the client is closed after.
        self.close_delimited = close_delimited
        self.replay = replay  # a Fly-Replay value: the response is not forwarded
        # The machine sent neither a length nor chunks: its body ends when it closes.
        self.upstream_until_close = upstream_until_close
        # A backhaul peer found no machine for the request: it may be sent elsewhere.
        self.hop_refused = hop_refused


# status -> (reason, status line) for the reason last seen with it: no key to build.
_status_lines: dict[int, tuple[bytes, bytes]] = {}


def _status_line(status: int, reason: bytes) -> bytes:
    cached = _status_lines.get(status)
    if cached is not None and cached[0] == reason:
        return cached[1]
    line = b"HTTP/1.1 %d %b\r\n" % (status, reason)
    _status_lines[status] = (reason, line)  # bounded: httptools allows three-digit codes only
    return line


def _add(parts: list[bytes], name: bytes, value: bytes) -> None:
    """Append one header line (four appends: no tuple per line in the compiled build)."""
    parts.append(name)
    parts.append(b": ")
    parts.append(value)
    parts.append(b"\r\n")


def build_response_head(
    status: int,
    reason: bytes,
    headers: list[tuple[bytes, bytes]],
    edge: EdgeHeaders,
    request_id: bytes,
    *,
    has_body: bool,
    client_http11: bool,
    client_keep_alive: bool,
    trusted: bool = False,
) -> ResponseHead:
    """The client's response head; the edge decides the framing.

    ``trusted``: the client is another edge (backhaul); it adds its own
    Fly-Request-Id, Via and Server, so this edge adds none.

    A body with a length keeps it; one without is chunk-encoded for HTTP/1.1
    clients, or delimited by closing for HTTP/1.0 ones.
    """
    parts = [_status_line(status, reason)]
    content_length: int | None = None
    replay: bytes | None = None
    hop_refused = False
    switching = status == 101
    upstream_chunked = False
    kinds = _response_kind
    for name, value in headers:
        kind = kinds.get(name)
        if kind is None:
            kind = _classify(name, kinds, _RESPONSE_KINDS, _DROP_RESPONSE)
        if kind == _PASS:
            _add(parts, name, value)
        elif kind == _LENGTH:
            content_length = int(value)
            _add(parts, name, value)
        elif kind == _TRANSFER:
            if b"chunked" in value.lower():
                upstream_chunked = True
        elif name.lower() == b"fly-replay":
            replay = value
        elif name.lower() == b"ferry-hop-refused":
            hop_refused = True
        elif switching and name.lower() in (b"connection", b"upgrade"):
            _add(parts, name, value)
    chunked_out = close_delimited = False
    if has_body and content_length is None:
        if client_http11:
            chunked_out = True
            parts.append(b"Transfer-Encoding: chunked\r\n")
        else:
            close_delimited = True
    if switching:
        pass  # the Connection: Upgrade of the machine's answer stays
    elif close_delimited or not client_keep_alive:
        parts.append(b"Connection: close\r\n")
    elif not client_http11:
        parts.append(b"Connection: keep-alive\r\n")
    if trusted:
        parts.append(b"\r\n")
    else:
        parts += (b"Fly-Request-Id: ", request_id, edge.response_tail)
    until_close = has_body and content_length is None and not upstream_chunked
    return ResponseHead(
        b"".join(parts), content_length, chunked_out, close_delimited, replay, until_close,
        hop_refused,
    )  # fmt: skip


def simple_response(
    status: int,
    body: str,
    *,
    request_id: bytes = b"",
    extra: tuple[tuple[bytes, bytes], ...] = (),
    close: bool = True,
) -> bytes:
    """A complete small plain-text response made by the edge itself."""
    payload = (body + "\n").encode()
    parts = [
        b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error")),
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(payload),
        b"Server: Ferry\r\nVia: 1.1 ferry\r\n",
    ]
    if request_id:
        parts.append(b"Fly-Request-Id: " + request_id + b"\r\n")
    for name, value in extra:
        parts.append(name + b": " + value + b"\r\n")
    if close:
        parts.append(b"Connection: close\r\n")
    parts += (b"\r\n", payload)
    return b"".join(parts)


def https_redirect(method: bytes, host: bytes, url: bytes, https_port: int) -> tuple[int, bytes]:
    """``force_https``: the status and ``Location`` sending a plain-HTTP request to HTTPS.

    Same host (without its port) and path; ``:port`` only when the edge's
    HTTPS port is not 443. 301 for GET and HEAD, as Fly answers; 308 for other
    methods, so a client repeats the same method and body over HTTPS (a 301
    lets clients turn a POST into a GET).
    """
    name = host
    if not host.endswith(b"]"):  # an IPv6 literal without a port keeps its colons
        head, colon, tail = host.rpartition(b":")
        if colon and tail.isdigit():
            name = head
    if not url.startswith(b"/"):  # absolute form: keep the path of http://host/path
        _, sep, rest = url.partition(b"://")
        url = b"/" + rest.partition(b"/")[2] if sep else b"/"
    port = b"" if https_port == 443 else b":%d" % https_port
    status = 301 if method in (b"GET", b"HEAD") else 308
    return status, b"https://" + name + port + url
