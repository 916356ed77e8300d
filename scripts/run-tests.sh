#!/usr/bin/env bash
# Runs one lane of the suite (unit | integration | e2e | all). pytest's exit
# code 5 ("no tests collected") fails the run: every lane must have tests.
# The integration and e2e tests need root: a lane that holds them fails at once
# when not run as root (the unit lane runs as anyone); `--need-root LANE` does
# that check alone, so `make test` says it before building anything.
# The suite runs on the compiled edge (make native); the proxy's own tests run
# once more on its pure-Python modules, the fallback when no build is current.
set -uo pipefail
cd "$(dirname "$0")/.."
need_root_only=0
if [ "${1:-}" = --need-root ]; then need_root_only=1; shift; fi  # the check alone (make)
lane=${1:-all}
pytest=(.venv/bin/pytest -p no:cacheprovider -q)
case "$lane" in
  unit) paths=(tests/unit) ;;
  integration) paths=(tests/integration) ;;
  e2e) paths=(tests/e2e) ;;
  all) paths=(tests/unit tests/integration tests/e2e) ;;
  *) echo "unknown lane $lane (unit|integration|e2e|all)" >&2; exit 2 ;;
esac
if [ "$lane" != unit ] && [ "$(id -u)" != 0 ]; then
  echo "ferry: the integration and e2e tests need root (runc, namespaces, mounts, cgroups);" \
       "run them as root (sudo make test), or run 'make test-unit' for the unit lane alone" >&2
  exit 1
fi
[ $need_root_only = 1 ] && exit 0
"${pytest[@]}" "${paths[@]}"
rc=$?
if [ $rc -eq 5 ]; then
  echo "no tests collected in lane '$lane'" >&2
fi
pure=()
case "$lane" in
  unit) pure=(tests/unit/proxy) ;;
  integration) pure=(tests/integration/proxy) ;;
  all) pure=(tests/unit/proxy tests/integration/proxy) ;;
esac
if [ $rc -eq 0 ] && [ ${#pure[@]} -gt 0 ]; then
  echo "the edge's tests again, on its pure-Python modules (FERRY_PURE_PYTHON=1):"
  FERRY_PURE_PYTHON=1 "${pytest[@]}" "${pure[@]}"
  rc=$?
fi
exit $rc
