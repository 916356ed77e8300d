#!/bin/busybox sh
# Writes must happen in the primary region: elsewhere, ask the edge to replay there (Fly-Replay).
if [ "$FLY_REGION" != "$PRIMARY_REGION" ]; then
  echo "Status: 409 Conflict"
  echo "Fly-Replay: region=$PRIMARY_REGION"
  echo "Content-Type: text/plain"
  echo ""
  echo "replaying to $PRIMARY_REGION"
  exit 0
fi
echo "Content-Type: text/plain"
echo ""
echo "written in region=$FLY_REGION machine=${FLY_MACHINE_ID:-?} replay-src=${HTTP_FLY_REPLAY_SRC:-none}"
