"""HTTP/2 <-> HTTP/1.1 translation at the edge: request header lists, response heads."""

from __future__ import annotations

import pytest

from ferry.proxy.h2_request import MalformedRequest, TranslatedRequest, translate_request
from ferry.proxy.h2_response import ResponseReader, h2_response_headers

BASE = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"web.ferry.test"),
    (b":path", b"/a?b=c"),
]


def translated(*extra: tuple[bytes, bytes]) -> TranslatedRequest:
    """``BASE`` and then ``extra``, a request without a body."""
    return translate_request([*BASE, *extra], end_stream=True)


def test_a_request_becomes_an_http11_head_for_the_edge() -> None:
    request = translated(
        (b"accept", b"*/*"), (b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"te", b"trailers")
    )
    assert request.head == (
        b"GET /a?b=c HTTP/1.1\r\nhost: web.ferry.test\r\naccept: */*\r\n"
        b"cookie: a=1; b=2\r\nconnection: close\r\n\r\n"
    )
    assert not request.chunked and request.method == b"GET"


def test_a_body_without_a_length_is_chunked_and_one_with_a_length_is_not() -> None:
    open_ended = translate_request([*BASE[:1], *BASE[1:]], end_stream=False)
    assert open_ended.chunked and b"transfer-encoding: chunked\r\n" in open_ended.head
    sized = translate_request([*BASE, (b"content-length", b"5")], end_stream=False)
    assert not sized.chunked and b"content-length: 5\r\n" in sized.head
    assert b"transfer-encoding" not in sized.head


def test_authority_wins_over_host() -> None:
    request = translated((b"host", b"other.ferry.test"))
    assert b"host: web.ferry.test\r\n" in request.head and b"other" not in request.head


def test_host_is_used_when_authority_is_missing() -> None:
    without_authority = [*BASE[:2], (b":path", b"/"), (b"host", b"h.ferry.test")]
    request = translate_request(without_authority, end_stream=True)
    assert request.head.startswith(b"GET / HTTP/1.1\r\nhost: h.ferry.test\r\n")


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ([*BASE, (b"connection", b"keep-alive")], "connection-specific"),
        ([*BASE, (b"transfer-encoding", b"chunked")], "connection-specific"),
        ([*BASE, (b"upgrade", b"websocket")], "connection-specific"),
        ([*BASE, (b"keep-alive", b"5")], "connection-specific"),
        ([*BASE, (b"te", b"gzip")], "te"),
        ([*BASE, (b"X-Upper", b"1")], "invalid header name"),
        ([*BASE, (b"x-a", b"1\r\nx-b: 2")], "CR, LF or NUL"),
        ([*BASE, (b"x-a", b" padded")], "whitespace"),
        ([(b"accept", b"*/*"), *BASE], "after a regular header"),
        ([*BASE, (b":method", b"POST")], "came twice"),
        ([*BASE, (b":protocol", b"websocket")], "unsupported pseudo-header"),
        ([(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a")], ":path"),
        ([(b":method", b"GET"), (b":authority", b"a"), (b":path", b"/")], ":scheme"),
        ([(b":method", b"CONNECT"), (b":authority", b"a:443")], "CONNECT"),
        ([(b":method", b"G T"), *BASE[1:]], "token"),
        ([*BASE[:3], (b":path", b"/a b")], "request target"),
        ([*BASE[:3], (b":path", b"relative")], "request target"),
        ([*BASE[:2], (b":authority", b"u@web"), BASE[3]], "valid host"),
    ],
)
def test_malformed_requests_are_refused(headers: list[tuple[bytes, bytes]], why: str) -> None:
    with pytest.raises(MalformedRequest) as caught:
        translate_request(headers, end_stream=True)
    assert why in caught.value.reason


def test_response_headers_lose_connection_fields_and_are_lowercased() -> None:
    headers = [
        (b"Content-Type", b"text/plain"),
        (b"Connection", b"close, X-Private"),
        (b"X-Private", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Fly-Request-Id", b"abc-ams"),
    ]
    assert h2_response_headers(404, headers) == [
        (b":status", b"404"),
        (b"content-type", b"text/plain"),
        (b"fly-request-id", b"abc-ams"),
    ]


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def interim(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.events.append(("interim", headers[0][1]))

    def head(self, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        self.events.append(("head", (dict(headers)[b":status"], end_stream)))

    def body(self, data: bytes) -> None:
        self.events.append(("body", data))

    def complete(self) -> None:
        self.events.append(("complete", None))


def test_reader_reports_interim_head_dechunked_body_and_end() -> None:
    sink = Sink()
    reader = ResponseReader(sink, head_only=False)
    reader.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n")
    reader.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
    reader.write(b"lo\r\n0\r\n\r\n")
    assert sink.events == [
        ("interim", b"100"),
        ("head", (b"200", False)),
        ("body", b"hel"),
        ("body", b"lo"),
        ("complete", None),
    ]
    assert reader.done


def test_reader_ends_a_head_response_after_its_head() -> None:
    sink = Sink()
    reader = ResponseReader(sink, head_only=True)
    reader.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert sink.events == [("head", (b"200", True))] and reader.done
