"""Run inside a region's namespace: sequential keep-alive GETs, latency and serving region each.

    python _regional_client.py URL COUNT

Prints one JSON line: {"latencies_ms": [...], "regions": {...}, "failed": n}.
"""

from __future__ import annotations

import json
import sys
import time

import httpx


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    latencies: list[float] = []
    regions: dict[str, int] = {}
    failed = 0
    with httpx.Client(timeout=10.0) as client:
        client.get(url)  # warm-up: connection, DNS
        for _ in range(count):
            began = time.perf_counter()
            try:
                response = client.get(url)
            except httpx.HTTPError:
                failed += 1
                continue
            latencies.append((time.perf_counter() - began) * 1000)
            region = response.text.partition("region=")[2].split(" ")[0]
            regions[region] = regions.get(region, 0) + 1
    print(json.dumps({"latencies_ms": latencies, "regions": regions, "failed": failed}))


if __name__ == "__main__":
    main()
