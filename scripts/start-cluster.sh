#!/usr/bin/env bash
# `npm run start:cluster`: installs what is missing, brings the native topology up (primary + 2
# replicas + PgBouncer), migrates, and serves the API on PGRAG_PORT (8080).
set -euo pipefail
exec bash "$(dirname "$0")/with-cluster.sh" node "$(dirname "$0")/../bin/pgrag.js" serve
