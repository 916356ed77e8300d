"""HTTP/2 through the edge over TLS with real clients: Python ``h2`` over ``ssl``, and curl."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from dataclasses import replace

import pytest

from ferry.model import DesiredState, MachineState

from .h2_harness import EdgeCerts, h2_client, h2_edge, make_certs, tls_edge, tls_served
from .harness import DOMAIN, TableBox, backend_entry, backends, run


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> EdgeCerts:
    return make_certs(tmp_path_factory.mktemp("h2-certs"))


def test_concurrent_streams_are_routed_like_http11_requests(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with h2_edge(certs) as edge:
            ams, client = edge.ams, edge.client
            answers = await asyncio.gather(
                *(client.request("GET", f"/slow?s=0.3&n={i}") for i in range(20))
            )
            seen = await client.request("GET", "/headers", (("cookie", "a=1"), ("cookie", "b=2")))
            unknown = await client.request("GET", "/", authority=f"nope.{DOMAIN}")
        assert [a.status for a in answers] == [200] * 20
        assert all(a.body == b"ams-1" for a in answers)
        assert ams.max_in_flight == 20  # all twenty at once on one client connection
        ids = {a.headers["fly-request-id"] for a in answers}
        assert len(ids) == 20 and all(i.endswith("-ams") for i in ids)
        assert answers[0].headers["x-backend"] == "ams-1"
        assert "connection" not in answers[0].headers
        forwarded = json.loads(seen.body)
        assert forwarded["x-forwarded-proto"] == "https"
        assert forwarded["x-forwarded-ssl"] == "on"
        assert forwarded["host"] == f"web.{DOMAIN}"
        assert forwarded["cookie"] == "a=1; b=2"
        assert forwarded["fly-client-ip"] == "127.0.0.1"
        assert unknown.status == 404 and b"no app" in unknown.body

    run(scenario())


def test_post_bodies_both_framings_and_a_large_response(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with h2_edge(certs) as edge:
            ams, client = edge.ams, edge.client
            body = bytes(range(256)) * 4096  # 1 MiB: several windows' worth
            chunked = await client.request("POST", "/echo", body=body)
            sized = await client.request(
                "POST", "/echo", (("content-length", str(len(body))),), body=body
            )
            # 8 MiB streamed by the machine through a 64 KiB client window
            big = await client.request("GET", "/stream?chunks=128&size=65536")
        assert chunked.status == 200 and bytes(chunked.body) == body
        assert sized.status == 200 and bytes(sized.body) == body
        assert ams.requests[0].headers["transfer-encoding"] == "chunked"
        assert ams.requests[1].headers["content-length"] == str(len(body))
        assert big.status == 200 and len(big.body) == 128 * 65536

    run(scenario())


def test_a_reset_stream_cancels_only_its_exchange(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with h2_edge(certs) as edge:
            ams, proxy, client = edge.ams, edge.proxy, edge.client
            slow = client.start("GET", "/slow?s=5")
            other = asyncio.ensure_future(client.request("GET", "/slow?s=1"))
            while ams.in_flight < 2:
                await asyncio.sleep(0.01)
            assert proxy.load.load.get("m1") == 2
            client.conn.reset_stream(slow, 8)  # CANCEL
            client.flush()
            for _ in range(100):  # the cancelled exchange gives its slot back at once
                if proxy.load.load.get("m1") == 1:
                    break
                await asyncio.sleep(0.01)
            assert proxy.load.load.get("m1") == 1 and not other.done()
            answer = await other
            after = await client.request("GET", "/")
            load = dict(proxy.load.load)
        assert answer.status == 200 and after.status == 200
        assert client.responses[slow].status == 0  # nothing came back on the reset stream
        assert all(v == 0 for v in load.values())

    run(scenario())


def test_fly_replay_over_h2(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with backends("ams-1", "fra-1") as (ams, fra):
            box = TableBox()
            box.set(backend_entry("m-ams", "ams", ams), backend_entry("m-fra", "fra", fra))
            async with (
                tls_served(box, certs, rtt_ms={"fra": 10.0}) as (_, port),
                h2_client(port, certs) as client,
            ):
                answer = await client.request("POST", "/replay?to=region=fra", body=b"payload")
        assert answer.status == 200 and answer.body == b"fra-1"
        assert fra.requests[-1].body == b"payload"
        assert "instance=m-ams;region=ams" in fra.requests[-1].headers["fly-replay-src"]

    run(scenario())


def test_a_stream_wakes_a_stopped_machine(certs: EdgeCerts) -> None:
    async def scenario() -> None:
        async with backends("ams-1") as (ams,):
            box = TableBox()
            up = backend_entry("m1", "ams", ams)
            box.set(replace(up, state=MachineState.STOPPED, desired_state=DesiredState.STOPPED))
            woken: list[str] = []

            async def wake(app: str, region: str) -> bool:
                woken.append(app)
                box.set(up)  # the control plane started it
                return True

            async with (
                tls_served(box, certs, wake=wake) as (_, port),
                h2_client(port, certs) as client,
            ):
                answer = await client.request("GET", "/")
        assert woken == ["web"]
        assert answer.status == 200 and answer.body == b"ams-1"

    run(scenario())


def test_curl_http2(certs: EdgeCerts) -> None:
    curl = shutil.which("curl")
    assert curl is not None

    async def scenario() -> list[str]:
        async with tls_edge(certs) as edge:
            port = edge.port
            host = f"web.{DOMAIN}"
            args = [
                curl, "-sS", "--http2", "--cacert", str(certs.ca),
                "--resolve", f"{host}:{port}:127.0.0.1",
                "-w", "\\n%{http_version} %{http_code}\\n",
                f"https://{host}:{port}/", "--next", "--http2", "--cacert", str(certs.ca),
                "--resolve", f"{host}:{port}:127.0.0.1", "--data-binary", "hello",
                "-w", "\\n%{http_version} %{http_code}\\n", f"https://{host}:{port}/echo",
            ]  # fmt: skip
            proc = await asyncio.create_subprocess_exec(
                *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
            return out.decode().split("\n")

    lines = run(scenario())
    assert lines[:4] == ["ams-1", "2 200", "hello", "2 200"]
