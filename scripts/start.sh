#!/usr/bin/env bash
# `npm start`: the platform on its default. With no database configured (no PGRAG_PRIMARY_URL and
# no PGRAG_ENV_FILE), that is the embedded PostgreSQL (PGlite) in ./.pgrag and the in-process dev
# inference server: nothing to install but node modules. `npm run start:cluster` runs the real
# topology (primary + 2 replicas + PgBouncer) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
bash scripts/build-console.sh
exec node bin/pgrag.js serve
