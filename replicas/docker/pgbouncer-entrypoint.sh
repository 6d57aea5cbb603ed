#!/bin/sh
# PgBouncer's auth file, written at start from the environment: SCRAM verifiers (the very ones the
# primary created the roles with), never plaintext passwords, readable by PgBouncer's user only.
set -eu
mkdir -p /tmp/pgbouncer
umask 077
{
  printf '"pgrag_app" "%s"\n' "$PGRAG_APP_SCRAM"
  printf '"pgrag_analyst" "%s"\n' "$PGRAG_ANALYST_SCRAM"
} >/tmp/pgbouncer/userlist.txt
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
