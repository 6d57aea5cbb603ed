#!/usr/bin/env bash
# `npm start`: installs what is missing, brings the native topology up (primary + 2 replicas +
# PgBouncer), migrates, and serves the API on PGRAG_PORT (8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
bash replicas/cluster.sh up --replicas "${PGRAG_REPLICAS:-2}"
export PGRAG_ENV_FILE=${PGRAG_ENV_FILE:-${PGRAG_CLUSTER_DIR:-/var/tmp/pgrag/dev}/cluster.env}
node bin/pgrag.js migrate
exec node bin/pgrag.js serve
