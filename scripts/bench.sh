#!/usr/bin/env bash
# `make bench`: every benchmark, one after the other; each prints its figures and conditions.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
for bench in scheduler_bench machine_start_raw userns_start machine_start suspend_bench deploy_bench proxy_bench nearest_bench wake_bench diurnal_bench; do
  echo "== bench/$bench.py"
  "$PY" "bench/$bench.py"
  echo
done
