#!/usr/bin/env bash
# `npm test`: installs what is missing, then type-checks, lints and runs every test against a
# fresh native topology (brought up and taken down by the suite's global setup).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
bash scripts/build-console.sh
npx tsc --noEmit -p .
npx tsc -p console # the console, for the browser
npx tsc -p loadtest/tsconfig.json # the k6 scripts, checked against @types/k6
npx eslint .
npm run -s format:check # one style: Prettier (npm run format)
npx depcruise src bench loadtest harness test --config .dependency-cruiser.cjs # the layering
mkdir -p test-results
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json "$@" || status=$?
# One plain closing line that any CI can read.
node -e '
  const r = JSON.parse(require("fs").readFileSync("test-results/vitest.json", "utf8"));
  console.log(`Tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' || true
exit "$status"
