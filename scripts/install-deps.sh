#!/usr/bin/env bash
# Installs the Debian packages Ferry needs, without letting their services
# start (they would listen on all interfaces). Idempotent; quiet when done.
set -euo pipefail

PACKAGES=(runc skopeo umoci buildah docker-registry iproute2 nftables
          busybox-static python3-venv python3-dev curl procps wrk haproxy
          util-linux psmisc ca-certificates iputils-ping tini nginx-light gcc
          golang-github-containers-common)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "ferry: installing ${missing[*]} needs root; run as root (sudo make …)" >&2
  exit 1
fi

echo "ferry: installing Debian packages: ${missing[*]}"
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[ $created_policy = 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian enables these services; Ferry runs its own copies on loopback.
for svc in docker-registry haproxy nginx; do
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
done
