"""The edge's side of certificates on port 80: HTTP-01 answers before routing, and
requests for a custom host name routed to the app that added it."""

from __future__ import annotations

import httpx

from ferry.tls.bundle import EdgeTls

from ..proxy.harness import TableBox, backend_entry, backends, edge_client, run, running_proxy

TLS = EdgeTls(
    version=3,
    http01={"tok-1": "tok-1.thumbprint"},
    apps={"www.example.test": "web", "*.apps.example.test": "web"},
)


def test_http01_tokens_custom_names_and_everything_else_as_before() -> None:
    async def scenario() -> None:
        async with backends("web-1") as (server,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", server))
            async with running_proxy(box, tls=lambda: TLS) as proxy:
                assert proxy.http_address is not None
                port = proxy.http_address[1]
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as raw:
                    for host in ("www.example.test", "whatever.example", "web.ferry.test"):
                        answer = await raw.get(
                            "/.well-known/acme-challenge/tok-1", headers={"Host": host}
                        )
                        assert answer.status_code == 200
                        assert answer.text.strip() == "tok-1.thumbprint"
                        assert answer.headers["content-type"].startswith("text/plain")
                    # custom names reach the app; names nobody added do not
                    for host in ("www.example.test", "WWW.example.test:80", "a.apps.example.test"):
                        answer = await raw.get("/", headers={"Host": host})
                        assert answer.headers.get("x-backend") == "web-1", host
                    assert (
                        await raw.get("/", headers={"Host": "nope.example.test"})
                    ).status_code == 404
                    assert (
                        await raw.get("/", headers={"Host": "a.b.apps.example.test"})
                    ).status_code == 404
                async with edge_client(proxy) as app:
                    # an unknown token goes on to the app, as any path did before
                    answer = await app.get("/.well-known/acme-challenge/other")
                    assert answer.headers.get("x-backend") == "web-1"
                    assert (await app.get("/")).headers.get("x-backend") == "web-1"

    run(scenario())
