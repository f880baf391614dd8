#!/usr/bin/env bash
# The Kubernetes-facing tests against a real cluster (KUBECONFIG must be set). Without it they
# run against the in-repo API stand-in as part of `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${KUBECONFIG:-}" ]; then
  echo "test:cluster: KUBECONFIG is not set — no real cluster to test against; these tests ran against the API stand-in in 'npm test'." >&2
  exit 2
fi
mapfile -t files < <(grep -rl 'kubeTarget(' src test --include='*.test.ts' | sort)
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
