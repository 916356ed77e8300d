"""Which connector mistakes would the corpus catch? Model each one, count the entries that change.

    python bench/waf_corpus/sensitivity.py

Each mistake is a change to the request as handed to the engine (the URI
decoded, the version forced, duplicate headers joined ...). For each, the
number of routable, sendable entries whose matched ids at paranoia 4 differ
from the faithful hand-over: zero means the corpus (and CRS 3.3) cannot see
that mistake, so the differential run would not either.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote_to_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.waf_corpus import load_corpus
from bench.waf_reference import ParsedRequest, WafReference, parse_request

__all__ = ["MISTAKES", "join_duplicates"]

#: (the faithful request, its raw bytes) -> the request a mistaken connector would hand over
Mistake = Callable[[ParsedRequest, bytes], ParsedRequest]


def _decode_path(request: ParsedRequest) -> ParsedRequest:
    path, mark, query = request.uri.partition(b"?")
    return replace(request, uri=unquote_to_bytes(path) + mark + query)


def join_duplicates(
    headers: tuple[tuple[bytes, bytes], ...], cookie_glue: bytes = b"; "
) -> tuple[tuple[bytes, bytes], ...]:
    """Headers with repeats folded into the first (", ", Cookie with ``cookie_glue``)."""
    joined: dict[bytes, tuple[bytes, bytes]] = {}
    for name, value in headers:
        key = name.lower()
        if key in joined:
            glue = cookie_glue if key == b"cookie" else b", "
            joined[key] = (joined[key][0], joined[key][1] + glue + value)
        else:
            joined[key] = (name, value)
    return tuple(joined.values())


def _as_str(request: ParsedRequest, _raw: bytes) -> ParsedRequest:
    """What the binding passes when given Latin-1-decoded ``str``: their UTF-8 encoding."""

    def utf8(b: bytes) -> bytes:
        return b.decode("latin-1").encode()

    return replace(
        request,
        uri=utf8(request.uri),
        headers=tuple((utf8(n), utf8(v)) for n, v in request.headers),
    )


def _untrimmed(request: ParsedRequest, raw: bytes) -> ParsedRequest:
    """Header values with trailing spaces and tabs kept, as httptools hands them over."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    values = [line.partition(b":")[2].lstrip(b" \t") for line in head]
    return replace(
        request, headers=tuple((n, v) for (n, _), v in zip(request.headers, values, strict=True))
    )


MISTAKES: dict[str, Mistake] = {
    "path percent-decoded once": lambda r, _: _decode_path(r),
    "absolute-form target cut to its path": lambda r, _: replace(
        r, uri=b"/" + r.uri.split(b"/", 3)[3] if r.uri.startswith(b"http") else r.uri
    ),
    "version always 1.1": lambda r, _: replace(r, version="1.1"),
    "duplicate headers joined": lambda r, _: replace(r, headers=join_duplicates(r.headers)),
    "header names lowercased": lambda r, _: replace(
        r, headers=tuple((n.lower(), v) for n, v in r.headers)
    ),
    "the edge's own headers added": lambda r, _: replace(
        r,
        headers=(
            *r.headers,
            (b"Fly-Client-IP", b"192.0.2.10"),
            (b"X-Forwarded-For", b"192.0.2.10"),
            (b"Fly-Request-Id", b"01HXYZ"),
            (b"Via", b"1.1 ferry"),
        ),
    ),
    "body cut at 64 KiB": lambda r, _: replace(r, body=r.body[:65536]),
    "body dropped": lambda r, _: replace(r, body=b""),
    "str instead of bytes": _as_str,
    "trailing spaces in header values kept": _untrimmed,
    "duplicate Cookie headers joined with ', '": lambda r, _: replace(
        r, headers=join_duplicates(r.headers, b", ")
    ),
}


def main() -> None:
    reference = WafReference()
    entries = [e for e in load_corpus() if e.sendable and e.routable]
    faithful = {e.name: reference.evaluate(e.raw).rule_ids for e in entries}
    print(f"{len(entries)} routable, sendable entries at paranoia 4")
    for label, mistake in MISTAKES.items():
        changed = [
            e.name
            for e in entries
            if reference.evaluate_request(mistake(parse_request(e.raw), e.raw)).rule_ids
            != faithful[e.name]
        ]
        print(f"{label:45} {len(changed):4} differ  {', '.join(changed[:3])}")
    loopback = [
        e.name
        for e in entries
        if reference.evaluate(e.raw, client=("127.0.0.1", 40000)).rule_ids != faithful[e.name]
    ]
    print(
        f"{'client 127.0.0.1 instead of the peer':45} {len(loopback):4} differ  "
        f"{', '.join(loopback[:3])}"
    )


if __name__ == "__main__":
    main()
