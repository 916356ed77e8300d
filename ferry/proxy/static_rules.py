"""The pure decisions of ``[[statics]]`` at the edge: which static a path is under, which
file it names (and whether it tries to leave the directory), and the response headers,
including when a conditional request gets a 304.

Everything here is a function of its arguments, except ``find_file``, which looks at
the copy on disk.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote_to_bytes

from ferry.model.machine_statics import StaticConfig

__all__ = [
    "CACHE_CONTROL",
    "CHUNK",
    "CopyMissing",
    "StaticFile",
    "Traversal",
    "content_type",
    "etag",
    "find_file",
    "header_value",
    "match_prefix",
    "not_modified",
    "request_path",
    "response_headers",
    "split_path",
]

#: An hour: an unfingerprinted file (index.html, /logo.png) reaches browsers and
#: shared caches within an hour of a deploy, while every hit in between costs no
#: request; after that a revalidation is a cheap 304 (the ETag is per image).
CACHE_CONTROL = b"public, max-age=3600"
#: Files up to this size are read whole with their lookup; larger ones stream in chunks.
CHUNK = 256 * 1024


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


class CopyMissing(Exception):
    """The copy's directory is gone (deleted while a newer table was on its way)."""


def find_file(
    root: Path, segments: tuple[str, ...], index_document: str | None
) -> StaticFile | None:
    """The regular file ``segments`` names under ``root`` (a directory's
    ``index_document`` when it names a directory), or None. Blocking (stats; reads
    a small file whole). The copy holds no symbolic links, so nothing found is
    outside ``root``. Raises ``CopyMissing`` when ``root`` itself is gone."""
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
        if not root.is_dir():
            raise CopyMissing(str(root)) from None
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
