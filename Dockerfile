# syntax=docker/dockerfile:1
# rtpengine-k8s image: one image for every command (allocator, sidecar, drain, status, ctl,
# kamailio-sync). CI builds every stage and smoke-tests the images: `npm run test:image`
# (scripts/test-image.sh, podman on a locally made Debian 12 + Node 22 base).
#
#   docker build -t rtpengine-k8s .                          # target "runtime" (default, last stage)
#   docker build --target runtime-exec -t rtpengine-k8s:exec .   # + Debian's rtpengine-daemon
#
# Roles and privileges (the chart sets these; see docs/operations.md):
#   allocator      root: writes /proc/rtpengine/control (mode 0220, owner = the module's proc_uid,
#                  root by default) and owns the node-local socket directory. No capabilities.
#   sidecar        root + NET_ADMIN: iptables-restore of its per-pod chain and `ip addr add` of the
#                  media IP inside the pod's own network namespace (NET_RAW as well for the
#                  gratuitous ARP when the allocator reserved the address: chart value
#                  sidecar.extraCapabilities).
#   rtpengine      root (or the module's proc_uid) for /proc/rtpengine/N/control; NET_ADMIN on
#                  rtpengine mr12+ where the daemon writes its own nftables chain.
#   kamailio-sync, drain, status
#                  non-root (uid 10001): only files on a shared volume, HTTP and the API server.
# The image's default user is the non-root one; the chart asks for uid 0 where the role needs it.

# Node 22: @kubernetes/client-node 2.x (undici 8) targets it; on Node 20 src/kube/node-compat.ts
# fills the gaps, but the image need not rely on that. Bookworm: Debian 12's rtpengine 10.5.
ARG NODE_IMAGE=node:22-bookworm-slim

# ---- build: dev dependencies, TypeScript → dist/ -------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Where the registry needs a site CA bundle (a TLS-inspecting proxy), pass it as a build secret:
#   docker build --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt .
# It is mounted for this step only and is in no layer; without it Node warns once and goes on.
RUN --mount=type=secret,id=ca-bundle NODE_EXTRA_CA_CERTS=/run/secrets/ca-bundle npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY proto ./proto
COPY src ./src
COPY bin ./bin
RUN npm run build

# ---- deps: production dependencies only ---------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=ca-bundle NODE_EXTRA_CA_CERTS=/run/secrets/ca-bundle npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime: the programs, iptables (nft and legacy) and the RTPENGINE xtables plugin -----
FROM ${NODE_IMAGE} AS runtime
# Debian's iptables package ships both backends (iptables-nft, iptables-legacy); the sidecar picks
# the one the node uses, as kubernetes-sigs/iptables-wrappers does. rtpengine-iptables is
# libxt_RTPENGINE.so, the `-j RTPENGINE --id N` plugin rtpengine ≤ mr11 needs (Debian 12: 10.5).
# iproute2 adds the media IP to the pod's interface, iputils-arping announces it (`arping -U`),
# procps gives sysctl (IPv6 ndisc_notify).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables rtpengine-iptables iproute2 iputils-arping procps ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 rtpek8s \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin rtpek8s
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY proto ./proto
COPY bin ./bin
RUN ln -s /app/bin/rtpengine-k8s.js /usr/local/bin/rtpengine-k8s && chmod 0755 /app/bin/rtpengine-k8s.js
USER 10001:10001
# tini reaps children (exec mode spawns rtpengine) and forwards SIGTERM to node.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/rtpengine-k8s.js"]
CMD ["help"]

# ---- runtime-exec: the above plus Debian's rtpengine-daemon for the sidecar's exec mode -----
# The daemon must match the kernel module on the node exactly (sipwise/rtpengine#1360); this
# target bundles Debian 12's 10.5.3.5. For another release build FROM this stage's parent with
# that release's packages instead.
FROM runtime AS runtime-exec
USER 0:0
RUN apt-get update \
 && apt-get install -y --no-install-recommends rtpengine-daemon rtpengine-utils \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001

# Default target: the plain runtime (the last stage would otherwise be runtime-exec).
FROM runtime
