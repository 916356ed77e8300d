"""The in-process reference on a handful of corpus requests (fast: the rules load once)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.waf_corpus import CORPUS_HOST, Entry, load_corpus
from bench.waf_corpus._build import chunked, request
from bench.waf_corpus.sensitivity import MISTAKES
from bench.waf_reference import SCORE_PROBE_ID, WafReference, parse_request, rewrite_host
from ferry.model.machine_waf import WafConfig


@pytest.fixture(scope="module")
def pl4() -> Iterator[WafReference]:
    with WafReference(WafConfig(mode="detect", paranoia=4)) as reference:
        yield reference


@pytest.fixture(scope="module")
def pl1() -> Iterator[WafReference]:
    with WafReference(WafConfig(mode="detect", paranoia=1)) as reference:
        yield reference


@pytest.fixture(scope="module")
def corpus() -> dict[str, Entry]:
    return {e.name: e for e in load_corpus()}


def test_sql_injection_matches_sqli_rules_and_the_blocking_evaluation(
    pl4: WafReference, corpus: dict[str, Entry]
) -> None:
    verdict = pl4.evaluate(corpus["sqli-000-query"].raw)
    assert {942100, 949110} <= verdict.rule_ids
    assert SCORE_PROBE_ID not in verdict.rule_ids
    assert verdict.anomaly_score >= 10


@pytest.mark.parametrize(
    ("name", "rule_id"),
    [
        ("xss-000-query", 941100),
        ("lfi-000-query", 930100),
        ("rce-000-query", 932160),
        ("php-000-query", 933100),
        ("scanner-ua-000", 913100),
        ("session-phpsessid-offsite", 943110),
        ("protocol-enforcement-method-propfind", 911100),
        ("protocol-attack-split-setcookie", 921120),
        ("multipart-php-upload", 933110),
        ("bodies-json-invalid", 200002),
    ],
)
def test_each_family_hits_its_rule(
    pl4: WafReference, corpus: dict[str, Entry], name: str, rule_id: int
) -> None:
    assert rule_id in pl4.evaluate(corpus[name].raw).rule_ids


def test_ordinary_browser_and_api_traffic_matches_nothing_at_paranoia_1(
    pl1: WafReference, corpus: dict[str, Entry]
) -> None:
    for name in ("benign-page-000", "benign-asset-003", "benign-api-json-004", "benign-form-002"):
        verdict = pl1.evaluate(corpus[name].raw)
        assert verdict.rule_ids == frozenset(), name
        assert verdict.anomaly_score == 0


def test_chunked_and_content_length_bodies_are_seen_alike(pl4: WafReference) -> None:
    body = b"id=1%27+UNION+SELECT+password+FROM+users--"
    plain = request("POST", "/x", body=body, content_type="application/x-www-form-urlencoded")
    head = request(
        "POST", "/x", content_type="application/x-www-form-urlencoded", content_length=False
    )
    split = head[:-2] + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body, [7, 9])
    assert parse_request(split).body == body
    assert pl4.evaluate(split).rule_ids == pl4.evaluate(plain).rule_ids
    assert 942100 in pl4.evaluate(split).rule_ids


def test_bytes_reach_the_engine_unchanged(pl4: WafReference) -> None:
    """A Latin-1 byte stays one byte (a str would be UTF-8 encoded into two)."""
    raw = request("GET", "/", [("X-Note", "caf\xe9")])
    ids = pl4.evaluate(raw).rule_ids
    assert 920274 in ids  # a byte outside the strict header range at PL4


def test_a_loopback_client_would_switch_the_rules_off_for_this_probe(
    pl4: WafReference, corpus: dict[str, Entry]
) -> None:
    """CRS 905110 exempts Apache's internal dummy connection from 127.0.0.1: an edge that
    hands the engine its own loopback address instead of the client's is visible."""
    raw = corpus["args-loopback-exemption-probe"].raw
    assert 942100 in pl4.evaluate(raw, client=("198.51.100.7", 5000)).rule_ids
    assert pl4.evaluate(raw, client=("127.0.0.1", 5000)).rule_ids == frozenset()


def test_the_body_past_the_limit_is_not_inspected(corpus: dict[str, Entry]) -> None:
    with WafReference(WafConfig(mode="detect", paranoia=1, body_limit=1024)) as small:
        assert small.evaluate(corpus["args-over-body-limit-tail-sqli"].raw).rule_ids == frozenset()


def test_rewrite_host_changes_the_placeholder_host_in_the_head_only() -> None:
    headers = [("Referer", f"https://{CORPUS_HOST}/a"), ("X-Other", f"x-{CORPUS_HOST}.evil")]
    raw = request("POST", "/", headers, b"h=" + CORPUS_HOST.encode())
    out = rewrite_host(raw, CORPUS_HOST.encode(), b"hello.ferry.test")
    assert parse_request(out).headers[0] == (b"Host", b"hello.ferry.test")
    assert (b"Referer", b"https://hello.ferry.test/a") in parse_request(out).headers
    assert (b"X-Other", f"x-{CORPUS_HOST}.evil".encode()) in parse_request(out).headers
    assert parse_request(out).body == parse_request(raw).body
    absolute = rewrite_host(
        request("GET", f"http://{CORPUS_HOST}/about"), CORPUS_HOST.encode(), b"h.ferry.test"
    )
    assert absolute.startswith(b"GET http://h.ferry.test/about HTTP/1.1\r\n")
    other = request("GET", "/", host="203.0.113.1")
    assert rewrite_host(other, CORPUS_HOST.encode(), b"hello.ferry.test") == other


def test_the_padded_host_probe_still_exposes_untrimmed_values_on_a_cluster_host(
    pl4: WafReference, corpus: dict[str, Entry]
) -> None:
    """The driver sends the corpus under the app's host: a same-site Referer must stay
    same-site, or 943110 matches either way and the probe sees nothing."""
    name = "args-padded-host-same-site-session-link"
    raw = rewrite_host(corpus[name].raw, CORPUS_HOST.encode(), b"wafdiff.ferry.test")
    request = parse_request(raw)
    faithful = pl4.evaluate_request(request).rule_ids
    untrimmed = MISTAKES["trailing spaces in header values kept"](request, raw)
    assert faithful == frozenset()
    assert pl4.evaluate_request(untrimmed).rule_ids == {943110, 949110}


@pytest.mark.parametrize(
    ("mistake", "name"),
    [
        ("path percent-decoded once", "lfi-path-005"),
        ("absolute-form target cut to its path", "protocol-enforcement-absolute-userinfo"),
        ("body dropped", "benign-api-json-000"),
        ("str instead of bytes", "args-referer-fullwidth-xss"),
        ("trailing spaces in header values kept", "args-padded-host-same-site-session-link"),
    ],
)
def test_the_corpus_has_a_request_that_exposes_each_modelled_connector_mistake(
    pl4: WafReference, corpus: dict[str, Entry], mistake: str, name: str
) -> None:
    request = parse_request(corpus[name].raw)
    faithful = pl4.evaluate_request(request).rule_ids
    assert pl4.evaluate_request(MISTAKES[mistake](request, corpus[name].raw)).rule_ids != faithful
