#!/usr/bin/env bash
# Runs a command against the local native topology: installs what is missing, brings the topology
# up (PGRAG_REPLICAS replicas, 2 by default), migrates, then execs the command with PGRAG_ENV_FILE set.
# PGRAG_TOPOLOGY=ha: the failover topology (Patroni, etcd, HAProxy) instead, in a directory and on
# ports of its own (/var/tmp/pgrag/ha, 5533…, PgBouncer 6532) unless given.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
if [[ ${PGRAG_TOPOLOGY:-plain} == ha ]]; then
  export PGRAG_CLUSTER_DIR=${PGRAG_CLUSTER_DIR:-/var/tmp/pgrag/ha} PGRAG_PG_PORT=${PGRAG_PG_PORT:-5533} \
    PGRAG_PGBOUNCER_PORT=${PGRAG_PGBOUNCER_PORT:-6532}
  bash replicas/cluster.sh up --ha --replicas "${PGRAG_REPLICAS:-2}"
else
  bash replicas/cluster.sh up --replicas "${PGRAG_REPLICAS:-2}"
fi
export PGRAG_ENV_FILE=${PGRAG_ENV_FILE:-${PGRAG_CLUSTER_DIR:-/var/tmp/pgrag/dev}/cluster.env}
node bin/pgrag.js migrate
exec "$@"
