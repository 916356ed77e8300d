#!/usr/bin/env bash
# Runs one lane of the suite (unit | integration | e2e | all). pytest's exit
# code 5 ("no tests collected") fails the run: every lane must have tests.
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
exit $rc
