#!/bin/busybox sh
# Takes a while to answer (?seconds, default 1): for trying concurrency limits.
seconds=${QUERY_STRING:-1}
/bin/busybox sleep "$seconds"
echo "Content-Type: text/plain"
echo ""
echo "slow answer from region=$FLY_REGION machine=$FLY_MACHINE_ID after ${seconds}s"
