"""Building blocks of the corpus generator: exact request bytes and corpus entries.

A request is built as bytes (CRLF line ends, headers in the given order);
an entry is a JSON object whose ``raw`` is those bytes decoded as Latin-1,
so every byte 0-255 survives a JSON round trip and stays readable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

__all__ = [
    "BROWSER_UA",
    "CORPUS_HOST",
    "Entry",
    "chunked",
    "form",
    "json_body",
    "multipart",
    "path_quote",
    "q",
    "request",
]

#: Every routable entry's Host; the differential driver rewrites it to the app's.
CORPUS_HOST = "app.waf.test"
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
_BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def q(value: str) -> str:
    """Percent-encode a query value the way a browser's form GET does (space -> +)."""
    return quote_plus(value, safe="")


def request(
    method: str,
    target: str | bytes,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    content_type: str | None = None,
    protocol: str = "HTTP/1.1",
    host: str | None = CORPUS_HOST,
    defaults: bool = True,
    content_length: bool = True,
) -> bytes:
    """The bytes of one request.

    ``defaults``: a browser's Host, User-Agent, Accept, Accept-Language first
    (``host=None`` leaves Host out); then ``headers`` as given; then
    Content-Type (if given) and Content-Length (when there is a body or the
    method is POST/PUT/PATCH, unless ``content_length`` is false).
    """
    target_bytes = target if isinstance(target, bytes) else target.encode("latin-1")
    lines: list[bytes] = [method.encode() + b" " + target_bytes + b" " + protocol.encode()]
    all_headers: list[tuple[str, str]] = []
    if defaults:
        if host is not None:
            all_headers.append(("Host", host))
        all_headers += [
            ("User-Agent", BROWSER_UA),
            ("Accept", _BROWSER_ACCEPT),
            ("Accept-Language", "en-US,en;q=0.9"),
        ]
    elif host is not None:
        all_headers.append(("Host", host))
    all_headers += headers or []
    if content_type is not None:
        all_headers.append(("Content-Type", content_type))
    if content_length and (body or method in ("POST", "PUT", "PATCH")):
        all_headers.append(("Content-Length", str(len(body))))
    lines += [f"{name}: {value}".encode("latin-1") for name, value in all_headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def form(pairs: list[tuple[str, str]]) -> bytes:
    """An application/x-www-form-urlencoded body."""
    return "&".join(f"{q(k)}={q(v)}" for k, v in pairs).encode()


def json_body(value: object) -> bytes:
    return json.dumps(value).encode()


def multipart(
    parts: list[tuple[str, str | None, str | None, bytes]],
    boundary: str = "----WebKitFormBoundary7MA4YWxkTrZu0gW",
) -> tuple[bytes, str]:
    """A multipart/form-data body from (field name, filename, part Content-Type, data).

    Returns the body and its Content-Type header value.
    """
    out = bytearray()
    for name, filename, ctype, data in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"Content-Disposition: {disposition}\r\n".encode("latin-1")
        if ctype is not None:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def chunked(body: bytes, sizes: list[int]) -> bytes:
    """``body`` in chunked transfer coding, cut into chunks of ``sizes`` (the rest last)."""
    out = bytearray()
    pos = 0
    for size in [*sizes, len(body)]:
        piece = body[pos : pos + size]
        pos += len(piece)
        if piece:
            out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return bytes(out) + b"0\r\n\r\n"


def path_quote(value: str) -> str:
    return quote(value, safe="/")


@dataclass
class Entry:
    """One corpus request.

    ``expect``: for an attack, the CRS rule-id prefixes of which at least one
    should match at paranoia 4 (e.g. ["942"]); empty for benign traffic.
    ``routable``: false when the Host header is itself what is tested (an
    IP, missing, empty): the edge cannot route it to an app, so only the
    reference sees it. ``sendable`` is filled in by the generator (httptools
    parses the bytes completely).
    """

    name: str
    family: str
    kind: str  # "attack" | "benign"
    raw: bytes
    expect: list[str] = field(default_factory=list)
    routable: bool = True
    note: str = ""
    sendable: bool = True

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "family": self.family,
                "kind": self.kind,
                "expect": self.expect,
                "routable": self.routable,
                "sendable": self.sendable,
                "note": self.note,
                "raw": self.raw.decode("latin-1"),
            },
            ensure_ascii=True,
        )
