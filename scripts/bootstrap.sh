#!/usr/bin/env bash
# Set-up from nothing, idempotent: the Debian packages the tests and the local run need, then
# `npm ci`. As root it installs what is missing; otherwise it says what is missing and which
# tests will therefore be reported as not run.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(rtpengine-daemon rtpengine-utils rtpengine-iptables kamailio sip-tester util-linux iptables iproute2 iputils-arping redis-server)
declare -A NEEDED_BY=(
  [rtpengine-daemon]="test/e2e (ng against real rtpengine, proxy, sidecar, kamailio-sync), npm start, npm run bench"
  [rtpengine-utils]="rtpengine-ctl for drain comparisons by hand"
  [rtpengine-iptables]="the RTPENGINE rule text check with the real iptables parser"
  [kamailio]="test/e2e Kamailio tests (proxy failover, kamailio-sync), npm start, npm run scale-proof and crash-proof"
  [sip-tester]="SIPp: the calls of npm start, npm run scale-proof and crash-proof, the local e2e test"
  [util-linux]="setpriv --pdeathsig: children of npm start die with it; flock(1): the allocator's state-file lock; unshare: the container-restart test"
  [iptables]="test/e2e forwarding-rule tests in network namespaces"
  [iproute2]="test/e2e network-namespace and media-address tests"
  [iputils-arping]="media-address announcement tests (gratuitous ARP), sidecar lifecycle e2e"
  [redis-server]="call persistence: test/e2e/persistence-rtpengine and sidecar-persistence (calls survive kill -9 of rtpengine), the persistence bench, npm run crash-proof and npm start (a local redis-server per run)"
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for pkg in "${PACKAGES[@]}"; do installed "$pkg" || missing+=("$pkg"); done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The packages' own services are not wanted (the tests start their own daemons on free
    # ports): the standard policy-rc.d veto keeps the maintainer scripts from starting them.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; own_policy=1; fi
    trap '[ "$own_policy" = 1 ] && rm -f "$policy"' EXIT
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
