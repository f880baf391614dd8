#!/usr/bin/env bash
# Set-up from nothing, idempotent: the Debian packages the tests and the local run need, then
# `npm ci`. As root it installs what is missing; otherwise it says what is missing and which
# tests will therefore be reported as not run.
set -euo pipefail
cd "$(dirname "$0")/.."

# package -> the binary or file that proves it is installed
declare -A PROBE=(
  [rtpengine-daemon]=/usr/bin/rtpengine
  [rtpengine-utils]=/usr/bin/rtpengine-ctl
  [rtpengine-iptables]=/usr/lib/x86_64-linux-gnu/xtables/libxt_RTPENGINE.so
  [kamailio]=/usr/sbin/kamailio
  [iptables]=/usr/sbin/iptables
  [iproute2]=/usr/sbin/ip
  [iputils-arping]=/usr/bin/arping
)
declare -A NEEDED_BY=(
  [rtpengine-daemon]="test/e2e (ng against real rtpengine, proxy, sidecar, kamailio-sync), npm start, npm run bench"
  [rtpengine-utils]="drain comparison tests (rtpengine-ctl)"
  [rtpengine-iptables]="the RTPENGINE rule text check with the real iptables parser"
  [kamailio]="test/e2e Kamailio tests (proxy failover, kamailio-sync)"
  [iptables]="test/e2e forwarding-rule tests in network namespaces"
  [iproute2]="test/e2e network-namespace and media-address tests"
  [iputils-arping]="media-address announcement tests (gratuitous ARP), sidecar lifecycle e2e"
)

missing=()
for pkg in "${!PROBE[@]}"; do
  if [ ! -e "${PROBE[$pkg]}" ] && ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The package's own service is not wanted: the tests start their own daemons on free ports.
    pkill -x rtpengine 2>/dev/null || true
    pkill -x kamailio 2>/dev/null || true
  else
    echo "bootstrap: not root (or no apt-get), so these Debian packages stay missing: ${missing[*]}" >&2
    for pkg in "${missing[@]}"; do
      echo "  - $pkg: tests needing it are reported as skipped (not passed): ${NEEDED_BY[$pkg]}" >&2
    done
    echo "  install them with: sudo apt-get install ${missing[*]}" >&2
  fi
fi

stamp=node_modules/.bootstrap-lock
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "bootstrap: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
