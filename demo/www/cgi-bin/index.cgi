#!/bin/busybox sh
echo "Content-Type: text/plain"
echo ""
echo "Hello from Ferry! region=${FLY_REGION:-?} machine=${FLY_MACHINE_ID:-?} app=${FLY_APP_NAME:-?}"
