"""The edge side of certificates: the edge DNS for custom names and DNS-01, and the feed
that keeps the TLS snapshot in memory and on disk (0600) across restarts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from ferry.errors import UnavailableError
from ferry.proxy.dns import answer_query
from ferry.tls.bundle import CertBundle, EdgeTls
from ferry.tls.edge_feed import EdgeTlsFeed

BUNDLE = CertBundle(("www.example.com",), b"CHAIN", b"KEY", datetime(2027, 1, 1, tzinfo=UTC))
TLS = EdgeTls(
    version=7,
    certificates={"www.example.com": BUNDLE, "*.apps.example.com": BUNDLE},
    http01={"tok": "tok.thumb"},
    alpn01={"alpn-only.example.com": BUNDLE},
    dns01={"_acme-challenge.wild.example.com": ("v1", "v2")},
    apps={"pending.example.com": "web", "*.more.example.com": "web"},
)


def ask(name: str, rdtype: str, tls: EdgeTls | None = TLS) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype).to_wire()
    wire = answer_query(query, "ferry.test", "10.77.250.1", tls)
    assert wire is not None
    return dns.message.from_wire(wire)


@pytest.mark.parametrize(
    "name",
    ["www.example.com", "pending.example.com", "x.apps.example.com", "WWW.EXAMPLE.COM",
     "y.more.example.com"],
)  # fmt: skip
def test_custom_names_of_apps_or_with_a_certificate_resolve_to_the_edge(name: str) -> None:
    answer = ask(name, "A")
    assert [r.to_text() for r in answer.answer[0]] == ["10.77.250.1"]


def test_dns01_txt_values_are_served_and_other_names_do_not_exist() -> None:
    answer = ask("_acme-challenge.wild.example.com", "TXT")
    assert sorted(r.to_text() for r in answer.answer[0]) == ['"v1"', '"v2"']
    assert ask("other.example.com", "A").rcode() == dns.rcode.NXDOMAIN
    assert ask("alpn-only.example.com", "A").rcode() == dns.rcode.NXDOMAIN
    assert ask("a.b.apps.example.com", "A").rcode() == dns.rcode.NXDOMAIN  # one label only
    assert ask("www.example.com", "A", tls=None).rcode() == dns.rcode.NXDOMAIN
    app = ask("web.ferry.test", "A")  # the cluster's own names as before
    assert [r.to_text() for r in app.answer[0]] == ["10.77.250.1"]


class Source:
    def __init__(self, answers: list[EdgeTls | Exception]) -> None:
        self.answers = answers
        self.asked: list[int] = []

    def watch_edge_tls(self, region: str, since: int = 0, timeout: float = 30) -> EdgeTls:
        self.asked.append(since)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_feed_keeps_the_snapshot_on_disk_0600_and_loads_it_after_a_restart(
    tmp_path: Path,
) -> None:
    state = tmp_path / "edge" / "tls.json"
    feed = EdgeTlsFeed(Source([TLS, UnavailableError("down")]), "ams", state)
    assert feed.poll_once() is True
    assert feed.current() == TLS
    assert state.stat().st_mode & 0o777 == 0o600
    with pytest.raises(UnavailableError):
        feed.poll_once()
    assert feed.current() == TLS  # kept while the control plane is down
    restarted = EdgeTlsFeed(Source([]), "ams", state)
    assert restarted.load_cached() == TLS
    assert restarted.current().certificates["www.example.com"].key_pem == b"KEY"


def test_the_feed_asks_from_its_version_once_connected_and_ignores_a_corrupt_file(
    tmp_path: Path,
) -> None:
    state = tmp_path / "tls.json"
    state.write_text("{not json")
    source = Source([TLS, TLS])
    feed = EdgeTlsFeed(source, "ams", state)
    assert feed.load_cached() == EdgeTls()
    feed.poll_once()
    assert feed.poll_once() is False
    assert source.asked == [0, 7]
    assert json.loads(state.read_text())["version"] == 7
