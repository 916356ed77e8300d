"""Deploy of 3 regions x 2 machines with the image already in the registry: wall time.

Run as root: ``.venv/bin/python bench/deploy_bench.py [--rounds 3]``.

Starts a three-region embedded cluster (one host per region), builds and
deploys the demo app once, scales it to two machines per region, then times
whole `ferry deploy` commands (CLI process start to exit) that roll a new
version (an [env] change, same image digest) over all six machines:
`rolling` (one machine at a time per region, each waits for started + checks
passing) and `immediate`. Also times creating a fresh app's six machines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time

from _cluster import demo_app_dir, ferry_cli

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster

REGIONS = ("ams", "iad", "sin")

FLY_TOML = """\
app = "{app}"
primary_region = "ams"
kill_signal = "SIGTERM"
kill_timeout = 5

[build]
  image = "{image}"

[env]
  ROUND = "{round}"

[http_service]
  internal_port = 8080
  [[http_service.checks]]
    interval = "10s"
    timeout = "2s"
    path = "/"

[[vm]]
  size = "shared-cpu-1x"
  memory = "128mb"

[deploy]
  strategy = "{strategy}"
"""


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    app_dir = demo_app_dir()
    work = app_dir.parent
    results: dict[str, list[float]] = {"rolling": [], "immediate": [], "create": []}
    try:
        with ephemeral_cluster(REGIONS, octet=191) as settings:
            build = timed(
                lambda: ferry_cli(settings, "deploy", "--regions", ",".join(REGIONS), cwd=app_dir)
            )
            token = settings.token_path.read_text().strip()
            with FerryClient(settings.api_url, token) as client:
                image = client.list_machines("hello")[0].config.image
            for region in REGIONS:
                ferry_cli(
                    settings, "scale", "count", "2", "--region", region, "-a", "hello", "--yes"
                )

            def deploy(app: str, strategy: str, round_no: int, *extra: str) -> None:
                directory = work / f"{app}-{strategy}-{round_no}"
                directory.mkdir()
                text = FLY_TOML.format(app=app, image=image, round=round_no, strategy=strategy)
                (directory / "fly.toml").write_text(text)
                ferry_cli(settings, "deploy", *extra, cwd=directory)

            for n in range(args.rounds):
                for strategy in ("rolling", "immediate"):
                    results[strategy].append(timed(lambda s=strategy, n=n: deploy("hello", s, n)))
            for n in range(args.rounds):
                app = f"fresh{n}"

                def create(app: str = app, n: int = n) -> None:
                    deploy(app, "immediate", n, "--regions", ",".join(REGIONS))
                    for region in REGIONS:
                        ferry_cli(
                            settings, "scale", "count", "2", "--region", region, "-a", app, "--yes"
                        )

                results["create"].append(timed(create))
            with FerryClient(settings.api_url, token) as client:
                running = [m for m in client.list_machines("hello") if m.state.value == "started"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"conditions: {os.cpu_count()} cores, 3 regions x 1 host, demo app (busybox httpd), "
        f"rounds={args.rounds}; first build+push+deploy of 3 machines took {build:.2f}s"
    )
    print(f"machines of 'hello' started at the end: {len(running)}")
    labels = {
        "rolling": "redeploy 3x2, rolling (checks)",
        "immediate": "redeploy 3x2, immediate",
        "create": "new app, 3x2 (deploy + 3 scale)",
    }
    for key, label in labels.items():
        samples = results[key]
        print(
            f"{label:<34} median {statistics.median(samples):5.2f}s"
            f"  max {max(samples):5.2f}s  (goal <= 5 s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
