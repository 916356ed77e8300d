"""Write the differential corpus (``*.jsonl`` beside this file) reproducibly.

    python bench/waf_corpus/generate.py

Deterministic: the same code writes the same bytes. Each family's requests
place their payloads where applications read them (query, form body, JSON,
multipart, cookies, headers, path); ``sendable`` is computed with httptools,
the parser of the edge.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httptools

from bench.waf_corpus._build import (
    CORPUS_HOST,
    Entry,
    form,
    json_body,
    multipart,
    q,
    request,
)
from bench.waf_corpus.benign import benign_families
from bench.waf_corpus.payloads import ATTACKS
from bench.waf_corpus.protocol import protocol_families

HERE = Path(__file__).resolve().parent
Placement = Callable[[str], bytes]


def _placements(param: str) -> list[tuple[str, Placement]]:
    """Where an attack payload goes: the ways applications receive input."""

    def query(p: str) -> bytes:
        return request("GET", f"/search?{param}={q(p)}&page=1")

    def urlform(p: str) -> bytes:
        return request(
            "POST",
            "/submit",
            body=form([(param, p), ("submit", "Send")]),
            content_type="application/x-www-form-urlencoded",
        )

    def as_json(p: str) -> bytes:
        return request(
            "POST",
            "/api/items",
            [("Origin", f"https://{CORPUS_HOST}")],
            body=json_body({param: p, "count": 1}),
            content_type="application/json",
        )

    def cookie(p: str) -> bytes:
        return request("GET", "/account", [("Cookie", f"session=ab12cd34; {param}={q(p)}")])

    def multi(p: str) -> bytes:
        body, ctype = multipart([(param, None, None, p.encode()), ("go", None, None, b"1")])
        return request("POST", "/upload", body=body, content_type=ctype)

    def argname(p: str) -> bytes:
        return request("GET", f"/search?{q(p)}=1")

    return [
        ("query", query),
        ("form", urlform),
        ("json", as_json),
        ("cookie", cookie),
        ("multipart", multi),
        ("argname", argname),
    ]


def attack_families() -> Iterator[Entry]:
    """Every payload of ``payloads.ATTACKS`` in the query, plus rotating other placements."""
    for family, (prefixes, param, payloads) in ATTACKS.items():
        placements = _placements(param)
        for index, payload in enumerate(payloads):
            name, place = placements[0]
            yield Entry(f"{family}-{index:03d}-{name}", family, "attack", place(payload), prefixes)
            if index % 3 == 0:
                name, place = placements[1 + (index // 3) % (len(placements) - 1)]
                yield Entry(
                    f"{family}-{index:03d}-{name}", family, "attack", place(payload), prefixes
                )


def path_attacks() -> Iterator[Entry]:
    """Traversal and restricted files in the request path itself."""
    paths = [
        "/../../../../etc/passwd",
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e/%2e%2e/etc/shadow",
        "/files/..;/..;/etc/passwd",
        "/download/....//....//etc/hosts",
        "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
        "/..%5c..%5cwindows%5cwin.ini",
        "/.git/config",
        "/.env",
        "/proc/self/environ",
        "/.htaccess",
    ]
    for index, path in enumerate(paths):
        yield Entry(f"lfi-path-{index:03d}", "lfi", "attack", request("GET", path), ["930", "920"])


def write(entries: list[Entry]) -> dict[str, int]:
    """Fill in ``sendable``, write one ``<family>.jsonl`` per family; counts per family."""
    by_family: dict[str, list[Entry]] = {}
    names: set[str] = set()
    for entry in entries:
        if entry.name in names:
            raise ValueError(f"duplicate corpus name {entry.name}")
        names.add(entry.name)
        entry.sendable = httptools_accepts(entry.raw)
        by_family.setdefault(entry.family, []).append(entry)
    for old in HERE.glob("*.jsonl"):
        old.unlink()
    for family, items in by_family.items():
        text = "".join(item.to_json() + "\n" for item in items)
        (HERE / f"{family}.jsonl").write_text(text)
    return {family: len(items) for family, items in sorted(by_family.items())}


def httptools_accepts(raw: bytes) -> bool:
    """True if httptools (the edge's parser) reads ``raw`` as one complete request."""

    class Done:
        complete = False

        def on_message_complete(self) -> None:
            self.complete = True

    done = Done()
    parser = httptools.HttpRequestParser(done)
    try:
        parser.feed_data(raw)
    except httptools.HttpParserError:
        return False
    return done.complete


def main() -> None:
    entries = [
        *attack_families(),
        *path_attacks(),
        *protocol_families(),
        *benign_families(),
    ]
    counts = write(entries)
    total = sum(counts.values())
    benign = sum(1 for e in entries if e.kind == "benign")
    unsendable = [e.name for e in entries if not e.sendable]
    for family, count in counts.items():
        print(f"{family:24} {count}")
    print(f"total {total}, benign {benign}, not sendable through httptools: {len(unsendable)}")
    for name in unsendable:
        print(f"  not sendable: {name}")


if __name__ == "__main__":
    main()
