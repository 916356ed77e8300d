"""The edge's per-request shortcuts give the same answers as the full rules."""

from __future__ import annotations

import random

from ferry.model import Concurrency, DesiredState, MachineState
from ferry.proxy.headers import EdgeHeaders, build_request_head, build_response_head
from ferry.proxy.naming import RequestIds
from ferry.proxy.routes import Backend, ServicePorts
from ferry.proxy.routing import (
    NO_PREFS,
    Choice,
    choose_target,
    fast_regions,
    pick_nearest_under_soft,
    plan_app_routes,
)

EDGE = EdgeHeaders("ams", 80)


def machine(mid: str, region: str, soft: int, hard: int | None) -> Backend:
    service = ServicePorts(
        internal_port=8080,
        ports=(80,),
        handlers=("http",),
        concurrency=Concurrency(type="requests", soft_limit=soft, hard_limit=hard),
    )
    return Backend(
        mid, f"{mid}-i", "web", region, "10.0.0.1", MachineState.STARTED, DesiredState.STARTED,
        (service,),
    )  # fmt: skip


def test_fast_pick_agrees_with_the_full_rule_and_draws_the_same_randomness() -> None:
    scenarios = random.Random(7)
    shortcuts = 0
    for case in range(2000):
        backends = [
            machine(
                f"m{i}",
                scenarios.choice(["ams", "fra", "iad"]),
                soft=scenarios.randint(1, 3),
                hard=scenarios.choice([None, 2, 3, 4]),
            )
            for i in range(scenarios.randint(0, 6))
        ]
        routes = plan_app_routes("web", backends, {"ams": 0.0, "fra": 10.0, "iad": 80.0})
        load = {b.machine_id: scenarios.randint(0, 4) for b in backends}
        health = {b.machine_id: False for b in backends if scenarios.random() < 0.2}
        fast_rng, full_rng = random.Random(case), random.Random(case)
        fast = pick_nearest_under_soft(fast_regions(routes), load, health, fast_rng)
        full = choose_target(routes, load, health, NO_PREFS, full_rng)
        if fast is None:
            continue  # the caller asks the full rule
        shortcuts += 1
        assert isinstance(full, Choice) and full.target == fast, case
        assert fast_rng.random() == full_rng.random(), case
    assert shortcuts > 500  # the shortcut is the common case


def test_request_ids_increase_and_differ_between_edges() -> None:
    first, second = RequestIds("ams"), RequestIds("ams")
    a = [first.next() for _ in range(100)]
    assert a == sorted(a) and len(set(a)) == 100
    assert all(len(i) == 30 and i.endswith(b"-ams") for i in a)
    assert second.next() not in a


def test_header_names_are_matched_whatever_their_case() -> None:
    for spelling in (b"Content-Length", b"content-length", b"CONTENT-LENGTH", b"cOnTeNt-LeNgTh"):
        head = build_request_head(
            b"POST", b"/", [(b"HOST", b"web"), (spelling, b"3"), (b"VIA", b"x")], EDGE, b"1", b"i"
        )
        assert head.content_length == 3 and head.host == b"web"
        assert b"VIA: x" not in head.head and b"HOST: web\r\n" in head.head
    r = build_response_head(
        200, b"OK", [(b"CONTENT-LENGTH", b"5"), (b"FLY-REPLAY", b"region=iad")], EDGE, b"ID",
        has_body=True, client_http11=True, client_keep_alive=True,
    )  # fmt: skip
    assert r.content_length == 5 and r.replay == b"region=iad" and not r.chunked_out


def test_a_flood_of_made_up_header_names_is_still_handled() -> None:
    headers = [(b"X-Made-Up-%d" % i, b"v") for i in range(5000)] + [(b"Host", b"web")]
    head = build_request_head(b"GET", b"/", headers, EDGE, b"1", b"i")
    assert head.host == b"web" and b"X-Made-Up-4999: v\r\n" in head.head
