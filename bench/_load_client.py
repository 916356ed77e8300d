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
from _regional_client import timed_get  # this script's directory is on sys.path


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
            answer = timed_get(client, url)
            if answer is None:
                failed += 1
                continue
            elapsed_ms, region = answer
            latencies.append(elapsed_ms)
            regions[region] = regions.get(region, 0) + 1
            if elapsed_ms > 50:
                slow.append((round(time.monotonic() - started, 2), round(elapsed_ms), region))
            time.sleep(pause)
    print(
        json.dumps({"latencies_ms": latencies, "failed": failed, "regions": regions, "slow": slow})
    )


if __name__ == "__main__":
    main()
