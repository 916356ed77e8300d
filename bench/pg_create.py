"""Issue 15's `ferry postgres create` figure: three regions, image cached, ready in ≤ 60 s.

Run (as root, from the repository)::

    PYTHONPATH=$PWD .venv/bin/python bench/pg_create.py [--runs 5]

Starts one ephemeral cluster (ams, iad, sin; octet 197), makes sure the Postgres
image is in its cache (``ensure_image``: built once if it is not, ~2 min, not
timed), then ``--runs`` times: ``ferry postgres create --name pgcN --region ams
--replicas iad,sin`` timed from the client side (the CLI process from start to
exit: input checks, pushing the image into the cluster's registry — a real copy
only on the first run —, volumes, machines, until Patroni reports a running
primary and both replicas running or streaming), then ``ferry postgres destroy``
(not timed). Prints each run, p50 and max, and the conditions. The cluster is
removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pg_common import (  # noqa: E402
    OCTET,
    conditions,
    create_database,
    destroy_database,
    median,
)
from ferry.cluster.ephemeral import ephemeral_cluster  # noqa: E402
from ferry.postgres.image import default_cache_dir, ensure_image  # noqa: E402

GOAL_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--octet", type=int, default=OCTET)
    args = parser.parse_args()
    if not 1 <= args.runs <= 10:
        parser.error("--runs 1..10")
    started = time.monotonic()
    built = ensure_image(default_cache_dir(), say=lambda line: print(line, flush=True))
    print(f"image {built.tag} ready in {time.monotonic() - started:.1f} s (not timed below)")
    with ephemeral_cluster(("ams", "iad", "sin"), octet=args.octet) as settings:
        seconds: list[float] = []
        for run in range(1, args.runs + 1):
            db = create_database(settings, f"pgc{run}", "ams", ("iad", "sin"))
            seconds.append(db.create_seconds)
            regions = ", ".join(m.region for m in db.members)
            print(f"  run {run}: {db.create_seconds:.1f} s ({regions})", flush=True)
            destroy_database(settings, db.name)
        report = conditions(
            settings,
            {
                "what": "ferry postgres create --region ams --replicas iad,sin (async),"
                " 1 shared CPU / 512 MB and a 1 GB volume per member, image cached",
                "timed": "the CLI process, start to exit (client side); destroy between runs",
            },
        )
        print("\n".join(["", "== ferry postgres create, three regions", *report]))
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        print(
            f"runs (s): {runs}; p50 {median(seconds):.1f} s, max {max(seconds):.1f} s;"
            f" goal ≤ {GOAL_S:.0f} s: {'met' if max(seconds) <= GOAL_S else 'NOT met'}"
            f" ({sum(s <= GOAL_S for s in seconds)} of {len(seconds)} runs)"
        )


if __name__ == "__main__":
    main()
