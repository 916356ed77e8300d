"""A small, bounded HTTP load generator run inside a region's namespace by e2e tests.

    python loadgen.py URL SECONDS [MAX_REQUESTS]

Sends sequential GETs over one keep-alive client (plus a fresh one after any
error) until SECONDS pass, MAX_REQUESTS are sent or SIGTERM comes (the request
in flight is finished first), and prints one JSON line:
{"ok": n, "failed": n, "statuses": {...}, "errors": [...first few...], "regions": {...}}.
Every 10th success it also writes ``ok N`` to stderr, so a test can wait until
the load is flowing instead of sleeping.
"""

from __future__ import annotations

import json
import signal
import sys
import time

import httpx


def main() -> None:
    url, seconds = sys.argv[1], float(sys.argv[2])
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    deadline = time.monotonic() + seconds
    ok = failed = 0
    statuses: dict[str, int] = {}
    regions: dict[str, int] = {}
    errors: list[str] = []
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda number, _frame: stopping.append(number))
    client = httpx.Client(timeout=5.0)
    while time.monotonic() < deadline and ok + failed < limit and not stopping:
        try:
            response = client.get(url)
            statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
            if response.status_code == 200:
                ok += 1
                if ok % 10 == 0:
                    print(f"ok {ok}", file=sys.stderr, flush=True)
                region = response.text.partition("region=")[2].split(" ")[0]
                regions[region] = regions.get(region, 0) + 1
            else:
                failed += 1
                if len(errors) < 5:
                    errors.append(f"{response.status_code}: {response.text[:120]}")
        except httpx.HTTPError as exc:
            failed += 1
            if len(errors) < 5:
                errors.append(repr(exc))
            client.close()
            client = httpx.Client(timeout=5.0)
        time.sleep(0.005)  # paces the load (at most ~200 req/s): part of its shape
    client.close()
    print(
        json.dumps(
            {"ok": ok, "failed": failed, "statuses": statuses, "errors": errors, "regions": regions}
        )
    )


if __name__ == "__main__":
    main()
