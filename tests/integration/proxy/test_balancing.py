"""Load limits, overflow, failover, replay and health with real backends on 127.0.0.1."""

from __future__ import annotations

import asyncio

from ferry.model import CheckConfig
from ferry.proxy.limits import ProxyLimits

from .harness import (
    TableBox,
    backend_entry,
    backends,
    edge_client,
    eventually,
    run,
    running_proxy,
)


def test_soft_limit_spreads_load_and_hard_limit_is_never_exceeded() -> None:
    async def scenario() -> None:
        async with backends("ams-1", "ams-2", "fra-1") as (a1, a2, fra):
            box = TableBox()
            box.set(
                backend_entry("m1", "ams", a1, soft=2, hard=3),
                backend_entry("m2", "ams", a2, soft=2, hard=3),
                backend_entry("m3", "fra", fra, soft=2, hard=3),
            )
            async with running_proxy(box, rtt_ms={"fra": 20.0}) as proxy, edge_client(proxy) as c:
                # 4 concurrent: both ams machines under soft limit take 2 each, fra none
                rs = await asyncio.gather(*(c.get("/slow?s=0.3") for _ in range(4)))
                assert sorted(r.text for r in rs) == ["ams-1", "ams-1", "ams-2", "ams-2"]
                # 8 concurrent: ams fills to its hard limit (3+3), the rest spill to fra
                rs = await asyncio.gather(*(c.get("/slow?s=0.3") for _ in range(8)))
                names = [r.text for r in rs]
                assert names.count("ams-1") == 3 and names.count("ams-2") == 3
                assert names.count("fra-1") == 2
        assert max(a1.max_in_flight, a2.max_in_flight, fra.max_in_flight) <= 3

    run(scenario())


def test_overflow_waits_briefly_then_503() -> None:
    async def scenario() -> None:
        async with backends("ams-1") as (a1,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", a1, soft=1, hard=1))
            limits = ProxyLimits(queue_wait=0.5, queue_max_waiters=2)
            async with running_proxy(box, limits=limits) as proxy, edge_client(proxy) as c:
                # 1 in flight, 1 queued and served after, 1 queued too long, 1 beyond the queue
                loop = asyncio.get_running_loop()
                began = loop.time()
                rs = await asyncio.gather(
                    c.get("/slow?s=0.2"),
                    c.get("/slow?s=0.4"),
                    c.get("/slow?s=0.1"),
                    c.get("/slow?s=0.1"),
                )
                took = loop.time() - began
        statuses = sorted(r.status_code for r in rs)
        assert statuses.count(200) >= 2 and statuses.count(503) >= 1
        refused = [r for r in rs if r.status_code == 503]
        assert all("all machines of web are at their hard limit" in r.text for r in refused)
        assert took < 2.0
        assert a1.max_in_flight == 1

    run(scenario())


def test_killed_backend_under_load_loses_no_get() -> None:
    async def scenario() -> None:
        async with backends("ams-1", "ams-2") as (a1, a2):
            box = TableBox()
            box.set(backend_entry("m1", "ams", a1), backend_entry("m2", "ams", a2))
            async with running_proxy(box) as proxy, edge_client(proxy) as c:

                async def worker() -> list[int]:
                    return [(await c.get("/slow?s=0.01")).status_code for _ in range(40)]

                async def killer() -> None:
                    # Kill a2 mid-load: once it has served a few requests (bounded wait).
                    for _ in range(500):
                        if len(a2.requests) >= 5:
                            break
                        await asyncio.sleep(0.01)
                    await a2.stop()

                results = await asyncio.gather(*(worker() for _ in range(10)), killer())
        statuses = [s for batch in results[:-1] for s in batch]  # type: ignore[union-attr]
        assert len(statuses) == 400
        assert statuses.count(200) == 400
        assert len(a2.requests) > 0

    run(scenario())


def test_no_started_machine_answers_503() -> None:
    async def scenario() -> None:
        from ferry.model import MachineState

        async with backends("ams-1") as (a1,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", a1, state=MachineState.STOPPED))
            async with running_proxy(box) as proxy, edge_client(proxy) as c:
                r = await c.get("/")
        assert r.status_code == 503
        assert "web has no started machine" in r.text

    run(scenario())


def test_fly_replay_to_another_region_and_instance() -> None:
    async def scenario() -> None:
        async with backends("ams-1", "iad-1", "iad-2") as (ams, iad1, iad2):
            box = TableBox()
            box.set(
                backend_entry("m-ams", "ams", ams),
                backend_entry("m-iad1", "iad", iad1),
                backend_entry("m-iad2", "iad", iad2),
            )
            async with running_proxy(box, rtt_ms={"iad": 80.0}) as proxy, edge_client(proxy) as c:
                r = await c.post("/replay?to=region=iad;state=w1", content=b"payload")
                assert r.status_code == 200
                assert r.headers["x-backend"].startswith("iad-")
                r2 = await c.get("/replay?to=instance=m-iad2")
                assert r2.text == "iad-2"
                r3 = await c.get("/replay?to=region=syd")
                assert r3.status_code == 502
                assert r3.headers["fly-replay-failed"] == "reason=no_candidate"
        replayed = next(q for q in iad1.requests + iad2.requests if q.path == "/replay")
        src = replayed.headers["fly-replay-src"]
        assert src.startswith("instance=m-ams;region=ams;t=") and src.endswith(";state=w1")
        assert replayed.body == b"payload"

    run(scenario())


def test_health_checks_remove_and_restore_a_machine() -> None:
    async def scenario() -> None:
        check = CheckConfig(type="http", path="/health", interval="0.1s", timeout="1s")
        async with backends("ams-1", "ams-2") as (a1, a2):
            box = TableBox()
            box.set(
                backend_entry("m1", "ams", a1, checks=(check,)),
                backend_entry("m2", "ams", a2, checks=(check,)),
            )
            async with running_proxy(box) as proxy, edge_client(proxy) as c:
                a2.healthy = False

                async def only_a1() -> bool:
                    return proxy.health.health.get("m2") is False

                assert await eventually(only_a1)
                names = {(await c.get("/")).text for _ in range(20)}
                assert names == {"ams-1"}
                a2.healthy = True

                async def both() -> bool:
                    return "m2" not in proxy.health.health

                assert await eventually(both)
                names = {(await c.get("/slow?s=0.05")).text for _ in range(1)}
                rs = await asyncio.gather(*(c.get("/slow?s=0.1") for _ in range(4)))
                assert {r.text for r in rs} == {"ams-1", "ams-2"}

    run(scenario())


def test_a_request_crossing_the_wan_wakes_a_nearer_stopped_machine() -> None:
    """The request goes on to the far machine; the local one is woken for the next ones."""

    async def scenario() -> tuple[int, int, list[tuple[str, str]], int, int]:
        from ferry.model import MachineState

        async with backends("iad-1", "ams-1") as (far, near):
            box = TableBox()
            stopped = backend_entry("near", "ams", near, state=MachineState.STOPPED)
            box.set(backend_entry("far", "iad", far), stopped)
            woken: list[tuple[str, str]] = []

            async def wake(app: str, region: str) -> bool:
                woken.append((app, region))
                box.set(backend_entry("far", "iad", far), backend_entry("near", "ams", near))
                return True

            async with (
                running_proxy(box, rtt_ms={"iad": 84.0}, wake=wake) as proxy,
                edge_client(proxy) as c,
            ):
                first = (await c.get("/")).status_code

                async def local_machine_up() -> bool:
                    return bool(woken)

                await eventually(local_machine_up)
                second = (await c.get("/")).status_code
        return first, second, woken, len(far.requests), len(near.requests)

    first, second, woken, far_count, near_count = run(scenario())
    assert (first, second) == (200, 200)
    assert woken == [("web", "ams")]
    assert (far_count, near_count) == (1, 1)  # first across the WAN, then the woken local one


def test_a_busy_machine_makes_the_edge_start_a_stopped_one() -> None:
    """Fly's autostart: when every started machine is at its soft limit, start another."""

    async def scenario() -> tuple[list[int], list[tuple[str, str]]]:
        from ferry.model import MachineState

        async with backends("ams-1", "ams-2") as (busy, spare):
            box = TableBox()
            box.set(
                backend_entry("busy", "ams", busy, soft=1, hard=None),
                backend_entry("spare", "ams", spare, soft=1, hard=None, state=MachineState.STOPPED),
            )
            woken: list[tuple[str, str]] = []

            async def wake(app: str, region: str) -> bool:
                woken.append((app, region))
                return True

            async with running_proxy(box, wake=wake) as proxy, edge_client(proxy) as c:
                answers = await asyncio.gather(c.get("/slow?s=0.3"), c.get("/slow?s=0.3"))
        return [a.status_code for a in answers], woken

    statuses, woken = run(scenario())
    assert statuses == [200, 200]  # the second one is served by the busy machine, not held
    assert woken == [("web", "ams")]


def test_requests_to_a_far_region_ride_the_backhaul_between_edges() -> None:
    """sin's edge forwards to ams's edge over one kept-alive connection; the machine sees
    the first edge's forwarding headers once, and ams's edge adds none of its own."""

    async def scenario() -> tuple[list[int], list[str], dict[str, str], int]:
        async with backends("ams-1") as (machine,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", machine))
            async with running_proxy(box, region="ams", backhaul_listen=("127.0.0.1", 0)) as ams:
                assert ams.backhaul_address is not None
                peers = {"ams": ams.backhaul_address}
                async with (
                    running_proxy(
                        box, region="sin", rtt_ms={"ams": 169.0}, backhaul_peers=peers
                    ) as sin,
                    edge_client(sin) as c,
                ):
                    answers = [await c.get("/") for _ in range(3)]
        return (
            [a.status_code for a in answers],
            [a.headers.get("fly-request-id", "") for a in answers],
            machine.requests[-1].headers,
            machine.connections,
        )

    statuses, request_ids, seen, _ = run(scenario())
    assert statuses == [200, 200, 200]
    assert all(rid.endswith("-sin") for rid in request_ids)  # the edge the client used
    assert seen["fly-region"] == "sin"
    assert seen["x-forwarded-for"].count(",") == 0  # one hop recorded: the client's
    assert "ferry-hop" not in seen and "fly-force-instance-id" not in seen  # edge-to-edge only


def test_a_forwarded_request_for_a_machine_the_far_edge_no_longer_has_is_still_served() -> None:
    """Edges' tables differ for a moment (a machine replaced during a rolling deploy):
    sin's edge forwards to ams machine m1, which ams's edge has already dropped. ams's
    edge serves the request with another of its machines; when it has none, sin's edge
    takes m1 out and sends the request elsewhere. The client sees only 200s."""

    async def scenario() -> tuple[list[tuple[int, str]], list[str]]:
        async with backends("ams-2", "iad-1") as (ams2, iad1):
            ams_view, sin_view = TableBox(), TableBox()
            ams_view.set(backend_entry("m2", "ams", ams2))
            sin_view.set(backend_entry("m1", "ams", ams2), backend_entry("m3", "iad", iad1))
            async with running_proxy(
                ams_view, region="ams", backhaul_listen=("127.0.0.1", 0)
            ) as ams:
                assert ams.backhaul_address is not None
                rtt = {"ams": 169.0, "iad": 224.0}
                async with (
                    running_proxy(
                        sin_view, region="sin", rtt_ms=rtt,
                        backhaul_peers={"ams": ams.backhaul_address},
                    ) as sin,
                    edge_client(sin) as c,
                ):  # fmt: skip
                    answers = [await c.get("/")]
                    ams_view.set(backend_entry("m3", "iad", iad1))  # ams has none left
                    answers += [await c.get("/") for _ in range(2)]
        return [(a.status_code, a.text) for a in answers], [a.headers for a in answers]

    answers, headers = run(scenario())
    assert answers == [(200, "ams-2"), (200, "iad-1"), (200, "iad-1")]
    assert not any("ferry-hop-refused" in h for h in headers)


def test_a_request_right_after_autostop_wakes_the_machine_instead_of_failing() -> None:
    """The edge's table lags the control plane for a moment: it still lists as started the
    machine autostop has just stopped. Refused connects are retried with a growing pause
    until the table shows the machine stopped; then the request wakes it and is served."""

    async def scenario() -> tuple[int, str, list[str]]:
        from ferry.model import MachineState

        async with backends("ams-1") as (machine,):
            port = machine.port
            await machine.stop()  # nothing listens any more: connects are refused
            box = TableBox()
            box.set(backend_entry("m1", "ams", machine))  # the stale view: still started
            woken: list[str] = []

            async def wake(app: str, region: str) -> bool:
                woken.append(app)
                await machine.start(port)
                box.set(backend_entry("m1", "ams", machine))
                return True

            async def table_catches_up() -> None:
                await asyncio.sleep(0.4)  # deliberate: the table's lag is what is tested
                box.set(backend_entry("m1", "ams", machine, state=MachineState.STOPPED))

            async with running_proxy(box, wake=wake) as proxy, edge_client(proxy) as c:
                lag = asyncio.create_task(table_catches_up())
                answer = await c.get("/")
                await lag
        return answer.status_code, answer.text, woken

    status, body, woken = run(scenario())
    assert (status, body) == (200, "ams-1")
    assert woken == ["web"]
