#!/usr/bin/env bash
# A compose replica: a base backup of the primary on first start (on its own slot), then a hot standby.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h primary -p 5432; do sleep 1; done
  PGPASSWORD="$REPLICATOR_PASSWORD" pg_basebackup -h primary -p 5432 -U replicator -D "$PGDATA" -X stream -S "$REPLICA_SLOT" -R --checkpoint=fast
  chmod 700 "$PGDATA"
  # No owner logins on a replica; the analyst only on the replica behind the analytics pool.
  sed -i '/^host    all          pgrag /d' "$PGDATA/pg_hba.conf"
  if [ "${SERVES_ANALYTICS:-false}" = true ]; then
    echo "host    pgrag        pgrag_analyst all     scram-sha-256" >>"$PGDATA/pg_hba.conf"
  fi
fi
exec postgres -c hot_standby=on -c hot_standby_feedback=on -c shared_preload_libraries=pg_stat_statements
