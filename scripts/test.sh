#!/usr/bin/env bash
# The whole suite: installs what it needs, type-checks, runs unit and end-to-end tests
# (real Envoy, router, simulated vLLM servers on loopback), then prints one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
mkdir -p .tmp
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest-results.json "$@" || status=$?
node -e '
  const r = require("./.tmp/vitest-results.json");
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' || true
exit $status
