"""Run inside a region's namespace: sequential keep-alive GETs, latency and serving region each.

    python _regional_client.py URL COUNT

Prints one JSON line: {"latencies_ms": [...], "regions": {...}, "failed": n}; a GET
that fails or answers 4xx/5xx counts as failed. ``timed_get`` also serves _load_client.py.
"""

from __future__ import annotations

import json
import sys
import time

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


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    latencies: list[float] = []
    regions: dict[str, int] = {}
    failed = 0
    with httpx.Client(timeout=10.0) as client:
        client.get(url)  # warm-up: connection, DNS
        for _ in range(count):
            answer = timed_get(client, url)
            if answer is None:
                failed += 1
                continue
            latencies.append(answer[0])
            regions[answer[1]] = regions.get(answer[1], 0) + 1
    print(json.dumps({"latencies_ms": latencies, "regions": regions, "failed": failed}))


if __name__ == "__main__":
    main()
