#!/usr/bin/env bash
# Installs the Debian packages Ferry needs, without letting their services
# start (they would listen on all interfaces). Idempotent; quiet when done.
set -euo pipefail

PACKAGES=(runc skopeo umoci buildah docker-registry iproute2 nftables
          busybox-static python3-venv python3-dev curl procps wrk haproxy
          util-linux psmisc ca-certificates iputils-ping tini nginx-light gcc
          golang-github-containers-common pebble modsecurity-crs
          nghttp2-client wireguard-go wireguard-tools iperf3 mmdebstrap)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# ModSecurity's recommended engine settings and unicode.mapping ship only in
# Debian's Apache module: take the two files out of its package, install nothing.
MODSEC_DIR=/usr/local/share/ferry/modsecurity
need_modsec_conf() { [ ! -s "$MODSEC_DIR/modsecurity.conf-recommended" ] || [ ! -s "$MODSEC_DIR/unicode.mapping" ]; }
fetch_modsec_conf() {
  local tmp; tmp=$(mktemp -d); chmod 755 "$tmp"
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root libapache2-mod-security2 >/dev/null && dpkg-deb -x ./*.deb x)
  mkdir -p "$MODSEC_DIR"
  cp "$tmp/x/etc/modsecurity/modsecurity.conf-recommended" "$tmp/x/etc/modsecurity/unicode.mapping" "$MODSEC_DIR/"
  rm -rf "$tmp"
}

if [ ${#missing[@]} -eq 0 ]; then
  if need_modsec_conf; then
    [ "$(id -u)" = 0 ] || { echo "ferry: fetching ModSecurity's settings needs root; run as root" >&2; exit 1; }
    apt-get update -qq; fetch_modsec_conf
  fi
  exit 0
fi

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
need_modsec_conf && fetch_modsec_conf
exit 0
