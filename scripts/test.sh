#!/usr/bin/env bash
# The whole suite: installs what it needs, type-checks, runs unit and end-to-end tests
# (real Envoy, router, simulated vLLM servers on loopback), then the bounded soak test on
# its own (SOAK_SECONDS, default 40), then the real-vLLM tier (installs vLLM's CPU build on
# first use; SKIP_VLLM=1 leaves it out), and prints one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
npm run build --silent
mkdir -p .tmp
rm -f .tmp/vitest-results.json .tmp/vitest-soak.json .tmp/vitest-vllm.json
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest-results.json "$@" || status=$?
if [ "$#" -eq 0 ]; then
  npx vitest run --config vitest.soak.config.ts --reporter=default --reporter=json --outputFile.json=.tmp/vitest-soak.json || status=$?
  if [ "${SKIP_VLLM:-}" != 1 ]; then
    bash scripts/setup-vllm.sh
    npx vitest run --config vitest.vllm.config.ts --reporter=default --reporter=json --outputFile.json=.tmp/vitest-vllm.json || status=$?
  fi
fi
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, skipped = 0;
  for (const f of [".tmp/vitest-results.json", ".tmp/vitest-soak.json", ".tmp/vitest-vllm.json"]) {
    if (!fs.existsSync(f)) continue;
    const r = JSON.parse(fs.readFileSync(f, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
  }
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
'
exit $status
