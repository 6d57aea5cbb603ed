#!/usr/bin/env bash
# Builds the console (console/ → console/dist, not committed) when it is missing or older than its
# sources; `npm start` and `npm test` run it, so a fresh clone needs nothing more.
set -euo pipefail
cd "$(dirname "$0")/.."
stale=$(find console -path console/dist -prune -o -type f -newer console/dist/index.html -print -quit 2>/dev/null || true)
if [[ ! -f console/dist/index.html || -n "$stale" ]]; then
  npx vite build console --logLevel warn
fi
