"""The differential corpus: well formed, big enough, every family, reproducible, sendable."""

from __future__ import annotations

from collections import Counter

import httptools
import pytest

from bench.waf_corpus import CORPUS_DIR, Entry, load_corpus
from bench.waf_corpus.benign import benign_families
from bench.waf_corpus.generate import attack_families, httptools_accepts, path_attacks
from bench.waf_corpus.protocol import protocol_families
from bench.waf_reference import RequestParseError, parse_request

FAMILIES = {
    "sqli",
    "xss",
    "lfi",
    "rfi",
    "rce",
    "php",
    "nodejs",
    "java",
    "session",
    "scanner",
    "protocol-enforcement",
    "protocol-attack",
    "multipart",
    "bodies",
    "encodings",
    "arguments",
    "benign-browser",
    "benign-api",
    "benign-forms",
    "benign-uploads",
    "benign-http",
}


@pytest.fixture(scope="module")
def corpus() -> list[Entry]:
    return load_corpus()


def test_corpus_has_every_family_and_at_least_400_requests(corpus: list[Entry]) -> None:
    counts = Counter(e.family for e in corpus)
    assert set(counts) == FAMILIES
    assert len(corpus) >= 400
    assert all(count >= 5 for count in counts.values()), counts
    benign = sum(1 for e in corpus if e.kind == "benign")
    assert 0.28 <= benign / len(corpus) <= 0.4, benign


def test_names_are_unique_and_attacks_say_what_they_expect(corpus: list[Entry]) -> None:
    assert len({e.name for e in corpus}) == len(corpus)
    for entry in corpus:
        assert entry.kind in ("attack", "benign"), entry.name
        assert entry.kind == "attack" or entry.expect == [], entry.name
        # an attack expecting nothing says why
        assert entry.kind == "benign" or entry.expect or entry.note, entry.name


def test_every_entry_parses_as_one_whole_request(corpus: list[Entry]) -> None:
    for entry in corpus:
        request = parse_request(entry.raw)
        assert request.method and request.uri.startswith((b"/", b"http://")), entry.name


def test_sendable_entries_read_the_same_through_httptools(corpus: list[Entry]) -> None:
    """What the edge's parser reads must be what the reference reads, or the comparison lies."""
    for entry in corpus:
        assert entry.sendable == httptools_accepts(entry.raw), entry.name
        if not entry.sendable:
            continue
        seen = _httptools_view(entry.raw)
        ours = parse_request(entry.raw)
        assert seen["url"] == ours.uri, entry.name
        assert seen["method"] == ours.method, entry.name
        assert seen["body"] == ours.body, entry.name
        # httptools keeps trailing spaces in a value; a web server (and the reference) does not
        trimmed = [(n, v.rstrip(b" \t")) for n, v in seen["headers"]]  # type: ignore[attr-defined]
        assert trimmed == list(ours.headers), entry.name


def test_host_appears_once_except_where_repetition_is_the_test(corpus: list[Entry]) -> None:
    for entry in corpus:
        hosts = [n for n, _ in parse_request(entry.raw).headers if n.lower() == b"host"]
        assert (
            len(hosts) == (2 if entry.name.endswith("host-twice") else 1) or not entry.routable
        ), entry.name


def test_only_a_few_entries_cannot_reach_an_edge(corpus: list[Entry]) -> None:
    unsendable = [e.name for e in corpus if not e.sendable]
    unroutable = [e.name for e in corpus if not e.routable]
    assert len(unsendable) <= 10, unsendable
    assert all(e.startswith("protocol-") for e in unsendable + unroutable)


def test_the_committed_files_are_what_the_generator_writes(corpus: list[Entry]) -> None:
    built = [*attack_families(), *path_attacks(), *protocol_families(), *benign_families()]
    for entry in built:
        entry.sendable = httptools_accepts(entry.raw)
    expected: dict[str, str] = {}
    for entry in built:
        expected[entry.family] = expected.get(entry.family, "") + entry.to_json() + "\n"
    for family, text in expected.items():
        assert (CORPUS_DIR / f"{family}.jsonl").read_text() == text, family


def test_a_malformed_file_is_refused_with_its_name_and_line(tmp_path: object) -> None:
    from pathlib import Path

    directory = Path(str(tmp_path))
    (directory / "x.jsonl").write_text('{"name": "a"}\n')
    with pytest.raises(ValueError, match=r"x.jsonl:1"):
        load_corpus(directory)


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_parse_request_refuses_what_is_not_one_request(raw: bytes) -> None:
    with pytest.raises(RequestParseError):
        parse_request(raw)


def _httptools_view(raw: bytes) -> dict[str, object]:
    class View:
        def __init__(self) -> None:
            self.url = b""
            self.headers: list[tuple[bytes, bytes]] = []
            self.body = b""

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))

        def on_body(self, body: bytes) -> None:
            self.body += body

    view = View()
    parser = httptools.HttpRequestParser(view)
    parser.feed_data(raw)
    return {
        "url": view.url,
        "method": parser.get_method(),
        "headers": view.headers,
        "body": view.body,
    }
