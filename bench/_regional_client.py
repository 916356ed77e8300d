"""Run inside a region's namespace: sequential keep-alive GETs, latency and serving region each.

    python _regional_client.py URL COUNT [opened]

With ``opened`` each GET goes over a connection opened before its clock
starts — what keep-alive gives — for servers that close every connection
(busybox httpd): the baseline that a keep-alive client of the edge is
compared against.

Prints one JSON line: {"latencies_ms": [...], "regions": {...}, "failed": n}; a GET
that fails or answers 4xx/5xx counts as failed. ``timed_get`` also serves _load_client.py.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from urllib.parse import urlsplit

import httpx


def timed_get(client: httpx.Client, url: str) -> tuple[float, str] | None:
    """One GET: (milliseconds, the region named in the answer), or None if it failed."""
    began = time.perf_counter()
    try:
        response = client.get(url)
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    elapsed_ms = (time.perf_counter() - began) * 1000
    return elapsed_ms, response.text.partition("region=")[2].split(" ")[0]


def timed_get_opened(url: str) -> tuple[float, str] | None:
    """One GET over a connection opened before the clock starts; read to the server's close."""
    parts = urlsplit(url)
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=10) as sock:
            began = time.perf_counter()
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            elapsed_ms = (time.perf_counter() - began) * 1000
    except OSError:
        return None
    text = b"".join(chunks).decode(errors="replace")
    if not text.startswith("HTTP/1.") or text.split(" ", 2)[1][0] in "45":
        return None
    return elapsed_ms, text.partition("region=")[2].split(" ")[0]


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    opened = sys.argv[3:] == ["opened"]
    latencies: list[float] = []
    regions: dict[str, int] = {}
    failed = 0
    with httpx.Client(timeout=10.0) as client:
        client.get(url)  # warm-up: connection, DNS
        for _ in range(count):
            answer = timed_get_opened(url) if opened else timed_get(client, url)
            if answer is None:
                failed += 1
                continue
            latencies.append(answer[0])
            regions[answer[1]] = regions.get(answer[1], 0) + 1
    print(json.dumps({"latencies_ms": latencies, "regions": regions, "failed": failed}))


if __name__ == "__main__":
    main()
