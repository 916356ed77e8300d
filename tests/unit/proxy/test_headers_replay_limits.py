"""Pure header, replay and limit pieces of the edge."""

from __future__ import annotations

import asyncio

import pytest

from ferry.errors import ValidationError
from ferry.proxy.headers import (
    EdgeHeaders,
    build_request_head,
    build_response_head,
    simple_response,
)
from ferry.proxy.limits import LoadTracker, ProxyLimits
from ferry.proxy.naming import HostRouter, RequestIds
from ferry.proxy.replay import parse_replay, replay_src
from ferry.proxy.routing import RoutePrefs

EDGE = EdgeHeaders("ams", 8080)


def test_host_names_app_with_or_without_domain_and_port() -> None:
    hosts = HostRouter("ferry.test")
    assert hosts.app_for(b"web.ferry.test") == "web"
    assert hosts.app_for(b"WEB.ferry.test:8080") == "web"
    assert hosts.app_for(b"web") == "web"
    assert hosts.app_for(b"web:80") == "web"
    assert hosts.app_for(b"a.b.ferry.test") is None
    assert hosts.app_for(b"example.com") is None
    assert hosts.app_for(b"[::1]:80") is None


def test_request_head_adds_edge_headers_and_drops_spoofed_ones() -> None:
    head = build_request_head(
        b"POST",
        b"/x?y=1",
        [
            (b"Host", b"web.ferry.test"),
            (b"X-Forwarded-For", b"1.2.3.4"),
            (b"Fly-Client-IP", b"6.6.6.6"),
            (b"Connection", b"keep-alive"),
            (b"Content-Length", b"5"),
            (b"fly-prefer-region", b"IAD"),
            (b"Expect", b"100-continue"),
        ],
        EDGE,
        b"10.0.0.9",
        b"ID-ams",
    )
    text = head.head.decode()
    assert text.startswith("POST /x?y=1 HTTP/1.1\r\n")
    assert text.endswith("\r\n\r\n")
    assert "X-Forwarded-For: 1.2.3.4, 10.0.0.9\r\n" in text
    assert "Fly-Client-IP: 10.0.0.9\r\n" in text and "6.6.6.6" not in text
    assert "Connection" not in text and "Expect" not in text
    assert "Fly-Region: ams\r\n" in text and "Via: 1.1 ferry\r\n" in text
    assert "X-Forwarded-Port: 8080\r\n" in text and "Fly-Forwarded-Port: 8080\r\n" in text
    assert "Fly-Request-Id: ID-ams\r\n" in text
    assert head.host == b"web.ferry.test" and head.content_length == 5
    assert head.prefer_region == "iad" and head.expect_continue
    assert head.steered and head.force_region is None and head.prefer_instance is None


def test_fly_routing_headers_are_read_and_passed_on() -> None:
    headers = [(b"Fly-Force-Region", b" SIN "), (b"fly-prefer-instance-id", b"m3")]
    head = build_request_head(b"GET", b"/", headers, EDGE, b"1", b"I")
    assert head.steered and head.force_region == "sin" and head.prefer_instance == "m3"
    assert b"Fly-Force-Region: " in head.head  # the app sees what the client asked for
    plain = build_request_head(b"GET", b"/", [(b"Host", b"web")], EDGE, b"1", b"I")
    assert not plain.steered


def test_the_backhaul_hop_header_is_read_from_peer_edges_only_and_never_forwarded() -> None:
    headers = [(b"Host", b"web.ferry.test"), (b"Ferry-Hop", b"m7")]
    from_client = build_request_head(b"GET", b"/", headers, EDGE, b"10.0.0.9", b"ID-ams")
    assert from_client.hop is None and b"m7" not in from_client.head
    from_peer = build_request_head(b"GET", b"/", headers, EDGE, b"1", b"I", trusted=True)
    assert from_peer.hop == "m7" and b"m7" not in from_peer.head


def test_a_peer_refusal_is_read_and_never_forwarded() -> None:
    r = build_response_head(
        503, b"Service Unavailable", [(b"Ferry-Hop-Refused", b"1"), (b"Content-Length", b"0")],
        EDGE, b"ID", has_body=True, client_http11=True, client_keep_alive=True,
    )  # fmt: skip
    assert r.hop_refused and b"Ferry-Hop" not in r.head
    plain = build_response_head(
        503, b"Service Unavailable", [(b"Content-Length", b"0")], EDGE, b"ID",
        has_body=True, client_http11=True, client_keep_alive=True,
    )  # fmt: skip
    assert not plain.hop_refused


def test_bad_content_length_is_refused() -> None:
    with pytest.raises(ValueError):
        build_request_head(b"GET", b"/", [(b"Content-Length", b"x")], EDGE, b"1", b"i")


def test_response_head_rechunks_bodies_without_length_and_hides_replay() -> None:
    r = build_response_head(
        200, b"OK", [(b"Server", b"gunicorn"), (b"Fly-Replay", b"region=iad")], EDGE, b"ID",
        has_body=True, client_http11=True, client_keep_alive=True,
    )  # fmt: skip
    text = r.head.decode()
    assert "gunicorn" not in text and "Server: Ferry\r\n" in text
    assert "Transfer-Encoding: chunked\r\n" in text and r.chunked_out
    assert r.replay == b"region=iad" and "Fly-Replay" not in text
    old = build_response_head(
        200, b"OK", [], EDGE, b"ID", has_body=True, client_http11=False, client_keep_alive=True
    )
    assert old.close_delimited and b"Connection: close" in old.head


def test_simple_response_is_complete() -> None:
    raw = simple_response(503, "web has no started machine", request_id=b"R")
    head, body = raw.split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable")
    assert b"Content-Length: %d" % len(body) in head
    assert body == b"web has no started machine\n"


def test_request_ids_are_unique_ordered_and_name_the_region() -> None:
    ids = RequestIds("ams")
    got = [ids.next() for _ in range(1000)]
    assert len(set(got)) == 1000
    assert all(i.endswith(b"-ams") and len(i) == 30 for i in got)


def test_replay_header_parsing() -> None:
    d = parse_replay('region="iad,ord";state=abc')
    assert d.regions == frozenset({"iad", "ord"}) and d.state == "abc"
    assert parse_replay("region=any").regions is None
    d = parse_replay("elsewhere=true")
    assert d.prefs("m1") == RoutePrefs(exclude_instance="m1")
    assert parse_replay("instance=m9").prefs("m1").force_instance == "m9"
    preferred = parse_replay("prefer_instance=m9").prefs("m1")
    assert preferred.prefer_instance == "m9" and preferred.force_instance is None


@pytest.mark.parametrize("bad", ["", "state=x", "region=", "app=other", "nonsense"])
def test_replay_header_errors_name_the_problem(bad: str) -> None:
    with pytest.raises(ValidationError):
        parse_replay(bad)


def test_replay_src_format() -> None:
    assert replay_src("m1", "ams", 123, "s") == b"instance=m1;region=ams;t=123;state=s"


def test_limits_reject_nonsense_and_check_bodies() -> None:
    with pytest.raises(ValidationError, match="header_timeout"):
        ProxyLimits(header_timeout=0)
    with pytest.raises(ValidationError, match="retry_window"):
        ProxyLimits(retry_window=-1)
    limits = ProxyLimits(max_body_bytes=10)
    assert limits.body_allowed(10) and not limits.body_allowed(11) and limits.body_allowed(None)


def test_overflow_queue_is_bounded_and_released_in_order() -> None:
    async def scenario() -> list[bool]:
        tracker = LoadTracker(max_waiters=2)
        tracker.acquire("web", "m1")
        first = asyncio.create_task(tracker.wait_for_slot("web", 1.0))
        second = asyncio.create_task(tracker.wait_for_slot("web", 0.05))
        await asyncio.sleep(0)
        third = await tracker.wait_for_slot("web", 1.0)  # the queue is full
        tracker.release("web", "m1")
        return [await first, await second, third, tracker.load == {}]

    assert asyncio.run(scenario()) == [True, False, False, True]
