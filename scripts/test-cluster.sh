#!/usr/bin/env bash
# `npm run test:cluster`: the Kubernetes-facing tests against a real cluster (kind or any other)
# with nothing but KUBECONFIG. Installs the whereabouts/NAD CRDs from test/crds/ when the cluster
# lacks them, runs every test that uses kubeTarget() (each creates and deletes its own namespace;
# IPPools go to kube-system with random ranges in 10.64.0.0/10 and are deleted), then removes the
# CRDs it installed. Without KUBECONFIG these tests run against the API stand-in in `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${KUBECONFIG:-}" ]; then
  echo "test:cluster: KUBECONFIG is not set — no real cluster to test against; these tests ran against the API stand-in in 'npm test'." >&2
  exit 2
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
state="$(mktemp)"
trap 'npx tsx scripts/test-cluster-crds.ts remove "$state" || echo "test:cluster: could not remove the CRDs it installed (listed in $state)" >&2' EXIT
npx tsx scripts/test-cluster-crds.ts install "$state"
mapfile -t files < <(grep -rl 'kubeTarget(' src test --include='*.test.ts' | sort)
echo "== ${#files[@]} Kubernetes-facing test files against the cluster in KUBECONFIG"
node --import tsx --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec "${files[@]}"
