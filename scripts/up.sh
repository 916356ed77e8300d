#!/usr/bin/env bash
# `make up`: start the embedded cluster, build and deploy the demo app to every region.
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY=$PWD/.venv/bin/ferry
export FERRY_HOME=${FERRY_HOME:-/var/lib/ferry}

"$FERRY" cluster up
demo="$FERRY_HOME/demo"
rm -rf "$demo" && mkdir -p "$demo"
cp -r demo/. "$demo/"
cp "$(command -v busybox)" "$demo/busybox"
regions=$("$FERRY" cluster status --json | .venv/bin/python -c 'import json,sys; print(",".join(r["code"] for r in json.load(sys.stdin)["regions"]))')
(cd "$demo" && "$FERRY" deploy --regions "$regions")

echo
echo "Ferry is up. Try:"
for r in ${regions//,/ }; do
  echo "  .venv/bin/ferry region exec $r -- curl -s http://hello.ferry.test/   # a client in $r, served by its nearest machine"
done
echo "  .venv/bin/ferry region exec sin -- curl -s http://hello.ferry.test/cgi-bin/write.cgi   # Fly-Replay to the primary (ams)"
echo "  .venv/bin/ferry region exec ams -- curl -s --http2 https://hello.ferry.test/   # HTTPS (HTTP/2) with the cluster's CA"
echo "  .venv/bin/ferry cluster ca > ferry-ca.pem      # the cluster's CA, for clients outside 'region exec'"
echo "  .venv/bin/ferry certs add www.hello.example -a hello   # a certificate by ACME (Pebble) for a name of your own"
echo "  .venv/bin/ferry status -a hello            # machines per region"
echo "  .venv/bin/ferry logs -a hello              # their output"
"$FERRY" status -a hello --json | .venv/bin/python -c '
import json, sys
data = json.load(sys.stdin)
machines = data["machines"] if isinstance(data, dict) else data
for m in machines:
    region, ip, mid = m["region"], m["host_ip"], m["id"]
    print(f"  .venv/bin/ferry region exec {region} -- curl -s http://{ip}:8080/   # straight to machine {mid}")
'
echo "  .venv/bin/ferry ssh console -a hello -C '/bin/busybox ip -6 addr show eth0'   # a command in a machine: its 6PN address"
echo "  .venv/bin/ferry wireguard create personal ams laptop laptop.conf   # a WireGuard peer on the org's private network (docs/networking.md)"
echo "  .venv/bin/ferry cluster status             # regions, hosts, addresses"
echo "  make down                                  # stop everything and clean up"
