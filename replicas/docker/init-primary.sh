#!/usr/bin/env bash
# First start of the compose primary: the same roles and database as replicas/cluster.sh makes. The
# login roles are created with SCRAM verifiers (from `pgrag compose-secrets`), which PostgreSQL stores
# as given: PgBouncer's auth file holds the same verifiers and no plaintext password exists here.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE replicator WITH LOGIN REPLICATION PASSWORD '${REPLICATOR_SCRAM}';
CREATE ROLE pgrag WITH LOGIN CREATEROLE PASSWORD '${PGRAG_OWNER_SCRAM}';
CREATE ROLE pgrag_app WITH LOGIN PASSWORD '${PGRAG_APP_SCRAM}';
CREATE ROLE pgrag_analyst WITH LOGIN PASSWORD '${PGRAG_ANALYST_SCRAM}';
GRANT pgrag_app, pgrag_analyst TO pgrag WITH ADMIN OPTION;
CREATE DATABASE pgrag OWNER pgrag;
SELECT pg_create_physical_replication_slot('replica1_slot'), pg_create_physical_replication_slot('replica2_slot');
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname pgrag -c "CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS pg_stat_statements;"
# Each role only where it needs to be, as replicas/cluster.sh does (replicas copy this file in their
# base backup; the analyst's line is added by the replica that serves PgBouncer's analytics pool).
cat >"$PGDATA/pg_hba.conf" <<'HBA'
local   all          all                  trust
host    replication  replicator   all     scram-sha-256
host    all          pgrag        all     scram-sha-256
host    pgrag        pgrag_app    all     scram-sha-256
HBA
