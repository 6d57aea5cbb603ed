#!/usr/bin/env bash
# Runs a command against the local native topology: installs what is missing, brings the topology
# up (PGRAG_REPLICAS replicas, 2 by default), migrates, then execs the command with PGRAG_ENV_FILE set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
bash replicas/cluster.sh up --replicas "${PGRAG_REPLICAS:-2}"
export PGRAG_ENV_FILE=${PGRAG_ENV_FILE:-${PGRAG_CLUSTER_DIR:-/var/tmp/pgrag/dev}/cluster.env}
node bin/pgrag.js migrate
exec "$@"
