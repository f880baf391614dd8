#!/usr/bin/env bash
# The test command (`npm test`): bootstrap, typecheck, lint, then every test with node's own
# runner. Under CI (CI=true) a test whose real dependency is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "== typecheck"; npx tsc --noEmit -p tsconfig.json
echo "== lint"; npx eslint --max-warnings=0 .
if [ "${CI:-}" = "true" ]; then export RTPE_K8S_REQUIRE_ALL=1; fi
mapfile -t files < <(find src test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
echo "== tests (${#files[@]} files)"
exec node --import tsx --test --test-concurrency=2 --test-timeout=300000 --test-reporter=spec "${files[@]}"
