#!/usr/bin/env bash
# Shared by start.sh and test.sh: system packages (as root), then node modules when missing or stale.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -eq 0 ]]; then
  bash replicas/install.sh
  # Debian's Chromium drives the console's browser test (playwright-core, no browser download).
  if ! command -v chromium >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
elif ! command -v pgbouncer >/dev/null; then
  echo "pgrag: PostgreSQL/pgvector/PgBouncer missing; run 'sudo bash replicas/install.sh' once" >&2
  exit 1
fi
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
