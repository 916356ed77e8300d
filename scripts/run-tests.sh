#!/usr/bin/env bash
# Runs one lane of the suite (unit | integration | e2e | all). pytest's exit
# code 5 ("no tests collected") fails the run: every lane must have tests.
# The suite runs on the compiled edge (make native); the proxy's own tests run
# once more on its pure-Python modules, the fallback when no build is current.
set -uo pipefail
cd "$(dirname "$0")/.."
lane=${1:-all}
pytest=(.venv/bin/pytest -p no:cacheprovider -q)
case "$lane" in
  unit) paths=(tests/unit) ;;
  integration) paths=(tests/integration) ;;
  e2e) paths=(tests/e2e) ;;
  all) paths=(tests/unit tests/integration tests/e2e) ;;
  *) echo "unknown lane $lane (unit|integration|e2e|all)" >&2; exit 2 ;;
esac
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
