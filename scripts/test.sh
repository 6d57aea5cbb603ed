#!/usr/bin/env bash
# `npm test`: installs what is missing, then type-checks, lints and runs every test against a
# fresh native topology (brought up and taken down by the suite's global setup).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
npx tsc --noEmit -p .
npx eslint .
npx vitest run "$@"
