"""The differential driver: the comparison (pure), reading events, and a whole run
against a stand-in edge on localhost that evaluates what it receives with the reference.
"""

from __future__ import annotations

import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator

import httptools
import pytest

from bench.waf_corpus import Entry, load_corpus
from bench.waf_differential import (
    Report,
    SendResult,
    compare,
    direct_sender,
    event_client,
    format_report,
    run_differential,
)
from bench.waf_reference import WafReference
from ferry.model.machine_waf import WafConfig

SAMPLE = [
    "sqli-000-query",
    "sqli-006-cookie",
    "xss-000-query",
    "rce-000-query",
    "lfi-path-000",
    "scanner-ua-001",
    "multipart-php-upload",
    "bodies-json-nested-sqli",
    "args-cookie-sqli",
    "benign-page-000",
    "benign-api-json-000",
    "benign-upload-000",
    "benign-http-chunked-json",
    "benign-http-head",
    "benign-http-expect-continue",
]


def test_compare_reports_missing_and_extra_ids_per_request() -> None:
    reference = {
        "same": frozenset({942100, 949110}),
        "edge-missed": frozenset({942100, 949110, 920273}),
        "edge-added": frozenset(),
        "both": frozenset({1, 2}),
        "no-event": frozenset({941100}),
    }
    edge = {
        "same": frozenset({949110, 942100}),
        "edge-missed": frozenset({942100}),
        "edge-added": frozenset({920350}),
        "both": frozenset({2, 3}),
    }
    families = {name: "f" for name in reference}
    diffs = {d.name: d for d in compare(families, edge, reference)}
    assert set(diffs) == {"edge-missed", "edge-added", "both", "no-event"}
    assert diffs["edge-missed"].missing == {949110, 920273} and not diffs["edge-missed"].extra
    assert diffs["edge-added"].extra == {920350} and not diffs["edge-added"].missing
    assert diffs["both"].missing == {1} and diffs["both"].extra == {3}
    assert diffs["no-event"].missing == {941100}


def test_event_client_reads_the_address_the_edge_recorded() -> None:
    fallback = ("10.0.0.9", 5555)
    assert event_client({"client_ip": "10.1.2.3"}, fallback) == ("10.1.2.3", 5555)
    assert event_client({"client_addr": "10.1.2.3:4444"}, fallback) == ("10.1.2.3", 4444)
    assert event_client({"client": "[fd00::1]:80"}, fallback) == ("fd00::1", 80)
    assert event_client({"client_ip": "fd00::2", "client_port": 7}, fallback) == ("fd00::2", 7)
    assert event_client({}, fallback) == fallback


def test_the_report_names_each_difference() -> None:
    report = Report(per_family={"sqli": [3, 1]})
    report.differences = compare({"a": "sqli"}, {"a": frozenset({1})}, {"a": frozenset({2})})
    report.unanswered = [SendResult("b", None, None, ("", 0), ("", 0), "timeout")]
    text = format_report(report)
    assert "requests compared: 3, differing: 1, unanswered: 1" in text
    assert "DIFF a (sqli): missing [2] extra [1]" in text
    assert "UNANSWERED b" in text


class StandInEdge:
    """A TCP server that answers every request with a Fly-Request-Id and records a WAF event
    computed by the reference on the bytes it received, after ``mangle`` (an edge's bug)."""

    def __init__(self, reference: WafReference, mangle: Callable[[bytes], bytes]) -> None:
        self.reference = reference
        self.mangle = mangle
        self.events: list[dict[str, object]] = []
        self.hosts: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = self.sock.getsockname()[:2]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            with conn:
                raw = _read_request(conn)
                self.hosts.append(re.search(rb"(?im)^host:[ \t]*(\S*)", raw).group(1))  # type: ignore[union-attr]
                request_id = uuid.uuid4().hex
                if re.search(rb"(?im)^expect:[ \t]*100-continue", raw):
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                verdict = self.reference.evaluate(self.mangle(raw), peer[:2], self.address)
                if verdict.rule_ids:
                    self.events.append(
                        {
                            "request_id": request_id,
                            "client_ip": peer[0],
                            "rule_ids": sorted(verdict.rule_ids),
                        }
                    )
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nFly-Request-Id: "
                    + request_id.encode()
                    + b"\r\nContent-Length: 2\r\n\r\nok"
                )

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self.sock.close()
        self.thread.join(timeout=5)


def _read_request(conn: socket.socket) -> bytes:
    class Done:
        complete = False

        def on_message_complete(self) -> None:
            self.complete = True

    done = Done()
    parser = httptools.HttpRequestParser(done)
    raw = b""
    while not done.complete:
        data = conn.recv(65536)
        if not data:
            break
        raw += data
        parser.feed_data(data)
    return raw


@pytest.fixture(scope="module")
def reference() -> Iterator[WafReference]:
    with WafReference(WafConfig(mode="detect", paranoia=4)) as ref:
        yield ref


@pytest.fixture(scope="module")
def sample() -> list[Entry]:
    corpus = {e.name: e for e in load_corpus()}
    return [corpus[name] for name in SAMPLE]


def _run(
    reference: WafReference,
    sample: list[Entry],
    mangle: Callable[[bytes], bytes],
    wait: float = 5.0,
) -> tuple[Report, StandInEdge]:
    edge = StandInEdge(reference, mangle)
    try:
        report = run_differential(
            sample,
            app_host="hello.ferry.test",
            send=direct_sender(edge.address),
            fetch_events=lambda: edge.events,
            reference=reference,
            wait_seconds=wait,
        )
    finally:
        edge.close()
    return report, edge


def test_an_edge_that_hands_the_engine_the_request_whole_has_no_difference(
    reference: WafReference, sample: list[Entry]
) -> None:
    report, edge = _run(reference, sample, lambda raw: raw)
    assert report.sent == len(SAMPLE)
    assert report.differences == [] and report.unanswered == []
    assert set(edge.hosts) == {b"hello.ferry.test"}
    assert report.per_family["sqli"] == [2, 0]


def test_an_edge_that_drops_cookies_is_caught_with_the_ids_it_missed(
    reference: WafReference, sample: list[Entry]
) -> None:
    # its events for the cookie requests never come: the bounded wait ends the run
    drop = re.compile(rb"(?im)^cookie:[^\r\n]*\r\n")
    report, _ = _run(reference, sample, lambda raw: drop.sub(b"", raw), wait=1.0)
    diffs = {d.name: d for d in report.differences}
    assert set(diffs) == {"sqli-006-cookie", "args-cookie-sqli"}
    assert 942100 in diffs["args-cookie-sqli"].missing
    assert not diffs["args-cookie-sqli"].extra
    assert report.per_family["arguments"] == [1, 1]
