"""Run inside a region's namespace: sequential GETs for a while, with a pause between them.

    python _load_client.py URL SECONDS PAUSE_MS

Prints one JSON line: {"latencies_ms": [...], "failed": n, "regions": {...}, "slow": [...]}
("slow": the requests over 50 ms: seconds into the run, milliseconds, serving region).
Bounded: stops after SECONDS or 100,000 requests.
"""

from __future__ import annotations

import json
import sys
import time

import httpx


def main() -> None:
    url, seconds, pause = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]) / 1000
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    regions: dict[str, int] = {}
    slow: list[tuple[float, float, str]] = []  # (seconds into the run, ms, serving region) > 50 ms
    started = time.monotonic()
    failed = 0
    with httpx.Client(timeout=10.0) as client:
        while time.monotonic() < deadline and len(latencies) + failed < 100_000:
            began = time.perf_counter()
            try:
                response = client.get(url)
                response.raise_for_status()
            except httpx.HTTPError:
                failed += 1
                continue
            latencies.append((time.perf_counter() - began) * 1000)
            region = response.text.partition("region=")[2].split(" ")[0]
            regions[region] = regions.get(region, 0) + 1
            if latencies[-1] > 50:
                slow.append((round(time.monotonic() - started, 2), round(latencies[-1]), region))
            time.sleep(pause)
    print(
        json.dumps({"latencies_ms": latencies, "failed": failed, "regions": regions, "slow": slow})
    )


if __name__ == "__main__":
    main()
