#!/usr/bin/env bash
# The native pgrag topology: one PostgreSQL primary, N physical streaming replicas (pg_basebackup +
# replication slots) and one PgBouncer in transaction pooling mode with a pooled database per node.
#
#   cluster.sh up [--replicas N] [--cascade | --ha]
#                                    start (initialising on first use); safe to run twice. --cascade:
#                                    replicas 3 and up stream from replica1, not from the primary
#                                    (cascading replication, as large fleets spare the primary's WAL senders)
#                                    --ha: the failover topology instead (Patroni, etcd, HAProxy; see ha.sh),
#                                    members pg1…pgN+1; later commands find it by its directory
#   cluster.sh down                  stop everything; no process or socket is left behind
#   cluster.sh status                nodes, roles, replay lag
#   cluster.sh stop-node NAME        stop one node (primary, replica1, … or a member pg1, …)
#   cluster.sh start-node NAME       start it again (a member rejoins as a replica, rewound if need be)
#   cluster.sh fault switchover|kill|freeze|thaw [MEMBER]
#                                    failover topology: a graceful switchover, SIGKILL of the leader's
#                                    Patroni and postmaster, SIGSTOP of them (thaw: SIGCONT)
#   cluster.sh leader                the member that is the primary now
#   cluster.sh restart-pgbouncer     restart the pooler only
#   cluster.sh backup [--type full|diff|incr]
#                                    back the primary up with pgBackRest (WAL is archived continuously)
#   cluster.sh restore-point NAME    a named point to restore to, its WAL archived at once
#   cluster.sh restore --to TARGET --into DIR [--port P]
#                                    restore into a new data directory and start it there, recovered to
#                                    TARGET: name:NAME, time:'2026-12-07 10:00:00+00' or lsn:0/3000028
#   cluster.sh discard-restore DIR   stop a restored server and delete its directory
#
# Settings (environment): PGRAG_CLUSTER_DIR (/var/tmp/pgrag/dev), PGRAG_PG_PORT (5433; replica i
# listens on PGRAG_PG_PORT+i), PGRAG_PGBOUNCER_PORT (6432), PGRAG_BACKUP_DIR (the pgBackRest
# repository, PGRAG_CLUSTER_DIR/backups), PGRAG_BACKUP_RETENTION_FULL (full backups kept, 2). Run as
# root, the servers run as the `postgres` OS user, since PostgreSQL and PgBouncer refuse to run as root.
set -euo pipefail

CLUSTER_DIR=${PGRAG_CLUSTER_DIR:-/var/tmp/pgrag/dev}
PG_PORT=${PGRAG_PG_PORT:-5433}
BOUNCER_PORT=${PGRAG_PGBOUNCER_PORT:-6432}
DB_NAME=pgrag
SOCK_DIR="$CLUSTER_DIR/sock"
ENV_FILE="$CLUSTER_DIR/cluster.env"
BACKUP_DIR=${PGRAG_BACKUP_DIR:-$CLUSTER_DIR/backups}
BACKUP_RETENTION_FULL=${PGRAG_BACKUP_RETENTION_FULL:-2}
PGBACKREST_CONF="$CLUSTER_DIR/pgbackrest/pgbackrest.conf"
STANZA=pgrag
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '[cluster] %s\n' "$*"; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

pg_bin_dir() {
  local d
  for d in /usr/lib/postgresql/17/bin /usr/lib/postgresql/15/bin; do
    [[ -x $d/postgres ]] && { echo "$d"; return; }
  done
  die "PostgreSQL not found: run replicas/install.sh first"
}
PG_BIN=$(pg_bin_dir)
command -v pgbouncer >/dev/null || die "pgbouncer not found: run replicas/install.sh first"
command -v pgbackrest >/dev/null || die "pgbackrest not found: run replicas/install.sh first"

if [[ $(id -u) -eq 0 ]]; then
  RUN_USER=postgres
  as_db_user() { runuser -u postgres -- "$@"; }
else
  RUN_USER=$(id -un)
  as_db_user() { "$@"; }
fi

node_port() { # primary → PG_PORT, replicaN → PG_PORT+N
  case "$1" in
    primary) echo "$PG_PORT" ;;
    replica[0-9]*) echo $((PG_PORT + ${1#replica})) ;;
    *) die "unknown node '$1' (primary, replica1, replica2, …)" ;;
  esac
}
node_dir() { echo "$CLUSTER_DIR/$1"; }
replica_names() { local d; for d in "$CLUSTER_DIR"/replica*; do [[ -d $d ]] && basename "$d"; done | sort -V || true; }
admin_psql() { # superuser over the private socket; -X ignores any psqlrc
  local port=$1; shift
  as_db_user "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$port" -U postgres "$@"
}
node_running() { as_db_user "$PG_BIN/pg_ctl" -D "$(node_dir "$1")" status >/dev/null 2>&1; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
secret() { cat "$CLUSTER_DIR/secrets/$1"; }

ensure_secret() {
  local f="$CLUSTER_DIR/secrets/$1"
  [[ -s $f ]] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$f"; chmod 600 "$f"; }
}

refuse_taken_port() { # $1 port, $2 what wants it
  port_in_use "$1" && die "port $1 (wanted for $2) is already in use by another program; choose other ports with PGRAG_PG_PORT / PGRAG_PGBOUNCER_PORT"
  return 0
}

write_node_conf() { # $1 node: settings that differ between nodes live in node.conf, included last
  cat >"$(node_dir "$1")/node.conf" <<CONF
port = $(node_port "$1")
cluster_name = 'pgrag-$1'
CONF
  # The primary archives every WAL segment to the backup repository: backups plus the archive
  # restore to any moment since the oldest backup kept. A segment is closed at least every minute, so
  # a quiet database loses at most that much if its disks are lost.
  [[ $1 == primary ]] && cat >>"$(node_dir "$1")/node.conf" <<CONF
archive_mode = on
archive_command = 'pgbackrest --config=$PGBACKREST_CONF --stanza=$STANZA archive-push %p'
archive_timeout = 60
CONF
  chown "$RUN_USER" "$(node_dir "$1")/node.conf"
  write_node_hba "$1"
}

pgbackrest_() { as_db_user pgbackrest --config="$PGBACKREST_CONF" --stanza="$STANZA" "$@"; }

write_pgbackrest_conf() {
  write_pgbackrest_conf_with "pg1-path=$(node_dir primary)
pg1-port=$PG_PORT
pg1-socket-path=$SOCK_DIR
pg1-user=postgres"
}

write_pgbackrest_conf_with() { # $1 the stanza's pgN-… lines (the servers it may back up)
  local dir; dir=$(dirname "$PGBACKREST_CONF")
  mkdir -p "$dir/log" "$dir/lock" "$dir/spool" "$BACKUP_DIR"
  cat >"$PGBACKREST_CONF" <<CONF
# Written by replicas/cluster.sh: pgBackRest's repository and the servers it backs up.
[global]
repo1-path=$BACKUP_DIR
repo1-retention-full=$BACKUP_RETENTION_FULL
compress-type=zst
process-max=2
start-fast=y
log-path=$dir/log
lock-path=$dir/lock
spool-path=$dir/spool
log-level-console=warn
log-level-file=info

[$STANZA]
$1
CONF
  chown -R "$RUN_USER" "$dir" "$BACKUP_DIR"
  chmod 700 "$BACKUP_DIR"
}

# The primary archives once the stanza exists; a cluster made before backups gets them at its next up.
enable_archiving() {
  write_pgbackrest_conf
  write_node_conf primary
  if [[ $(admin_psql "$PG_PORT" -d postgres -At -c "SHOW archive_mode") != on ]]; then
    log "restarting the primary to archive its WAL"
    as_db_user "$PG_BIN/pg_ctl" -D "$(node_dir primary)" -m fast -w -t 60 restart -l "$(node_dir primary)/server.log" >/dev/null
  fi
  pgbackrest_ stanza-create >/dev/null
}

# Which replica serves the analysts' pool: the last one, so replica1 (the first to come up, and the
# only one with --replicas 1) is never shared with them.
analytics_node() { replica_names | tail -n 1; }

write_node_hba() { # $1 node: each role may reach only the databases and nodes it needs
  local name=$1 owner_line="" analyst_line=""
  if [[ $name == primary ]]; then
    owner_line="host    all          pgrag        127.0.0.1/32   scram-sha-256"
  elif [[ $name == "$(analytics_node)" ]]; then
    analyst_line="host    $DB_NAME        pgrag_analyst 127.0.0.1/32   scram-sha-256"
  fi
  cat >"$(node_dir "$name")/pg_hba.conf" <<HBA
# Written by replicas/cluster.sh. The socket directory is private to the database OS user (and root).
local   all          all                         trust
host    replication  replicator   127.0.0.1/32   scram-sha-256
# The owner (migrations, admin CLI) on the primary only; the app on every node; analysts on one replica.
$owner_line
host    $DB_NAME        pgrag_app    127.0.0.1/32   scram-sha-256
$analyst_line
HBA
  # The database user's, like the rest of its directory: a backup restores it with its owner.
  chown "$RUN_USER" "$(node_dir "$name")/pg_hba.conf"
}

# Once the set of replicas is final: every node's access rules, reloaded where the node runs.
refresh_access_rules() {
  local name
  for name in primary $(replica_names); do
    write_node_hba "$name"
    node_running "$name" && admin_psql "$(node_port "$name")" -d postgres -c "SELECT pg_reload_conf()" >/dev/null
  done
  return 0
}

# The servers' settings, in both topologies (the failover one hands them to Patroni).
server_settings() {
  cat <<'CONF'
# Replication: physical streaming with slots, so a slow replica never loses WAL it still needs.
wal_level = replica
max_wal_senders = 16
max_replication_slots = 16
hot_standby = on
# Replicas tell the primary which rows their queries still read, so vacuum does not cancel long
# analyst queries; the price is some bloat on the primary while such a query runs.
hot_standby_feedback = on
max_standby_streaming_delay = 30s
wal_compression = on
# Bulk ingestion writes lots of WAL (heap + GIN + HNSW); larger checkpoints spread the I/O.
max_wal_size = 4GB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
# Memory: three nodes share one 24 GiB machine with the API and load generators.
shared_buffers = 1GB
effective_cache_size = 6GB
work_mem = 16MB
# An HNSW build is far faster when the whole graph fits in maintenance_work_mem; past it, pgvector
# falls back to a much slower on-disk build.
maintenance_work_mem = 2GB
max_parallel_maintenance_workers = 1
# Chunks churn on re-ingestion: vacuum and analyze small fractions often so the planner's
# statistics and the visibility map stay fresh for index-only scans.
autovacuum_naptime = 10s
autovacuum_vacuum_scale_factor = 0.05
autovacuum_analyze_scale_factor = 0.02
autovacuum_vacuum_cost_limit = 2000
# Data sits on SSD or in page cache.
random_page_cost = 1.1
effective_io_concurrency = 200
# Queries are short and many; JIT compilation costs more than it saves for them.
jit = off
max_connections = 200
shared_preload_libraries = 'pg_stat_statements'
track_io_timing = on
log_min_duration_statement = 1s
# Slow statements are logged without their bind parameters: those carry document text and key hashes.
log_parameter_max_length = 0
log_parameter_max_length_on_error = 0
log_line_prefix = '%m [%p] %q%u@%d '
CONF
}

init_primary() {
  local dir; dir=$(node_dir primary)
  log "initialising primary in $dir"
  ensure_secret replicator; ensure_secret pgrag; ensure_secret pgrag_app; ensure_secret pgrag_analyst
  chown -R "$RUN_USER" "$CLUSTER_DIR/secrets"
  as_db_user "$PG_BIN/initdb" -D "$dir" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  {
    printf "\n# ---- pgrag ----\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" "$SOCK_DIR"
    server_settings
    echo "include 'node.conf'"
  } >>"$dir/postgresql.conf"
  write_node_conf primary
  start_node primary
  admin_psql "$PG_PORT" -d postgres -c "CREATE ROLE replicator WITH LOGIN REPLICATION PASSWORD '$(secret replicator)'"
  create_database "$PG_PORT"
}

# The roles and the database, as the superuser on a new primary: run by init_primary here, by
# Patroni's post_bootstrap in the failover topology (where Patroni makes the replication role).
create_database() { # $1 port
  admin_psql "$1" -d postgres <<SQL
-- Owner of the schema; runs the migrations. CREATEROLE lets migrations manage the app/analyst roles.
CREATE ROLE pgrag WITH LOGIN CREATEROLE PASSWORD '$(secret pgrag)';
-- The API's role: no ownership, so row-level security applies to it.
CREATE ROLE pgrag_app WITH LOGIN PASSWORD '$(secret pgrag_app)';
CREATE ROLE pgrag_analyst WITH LOGIN PASSWORD '$(secret pgrag_analyst)';
GRANT pgrag_app, pgrag_analyst TO pgrag WITH ADMIN OPTION;
CREATE DATABASE $DB_NAME OWNER pgrag;
SQL
  # Extensions that need a superuser are enabled here, as a managed service's admin would.
  admin_psql "$1" -d "$DB_NAME" -c "CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS pg_stat_statements;"
  grant_monitoring "$1"
}

# The API reads each replica's WAL receiver timeline (pg_stat_wal_receiver shows it only to
# pg_read_all_stats) to keep a replica on an old timeline out of rotation after a failover.
grant_monitoring() { admin_psql "$1" -d postgres -c "GRANT pg_read_all_stats TO pgrag_app" >/dev/null; }

# The node a replica streams from: the primary, or replica1 for replicas 3+ of a cascaded fleet.
upstream_of() { # $1 replicaN, $2 cascade (true|false)
  if [[ $2 == true ]] && ((${1#replica} >= 3)); then echo replica1; else echo primary; fi
}

init_replica() { # $1 replicaN, $2 upstream node
  local name=$1 upstream=$2 dir port; dir=$(node_dir "$name"); port=$(node_port "$upstream")
  log "creating $name from a base backup of $upstream"
  # The slot lives on the upstream (a standby can hold slots and serve base backups too).
  admin_psql "$port" -d postgres -c \
    "SELECT pg_create_physical_replication_slot('${name}_slot') WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '${name}_slot')" >/dev/null
  as_db_user env PGPASSWORD="$(secret replicator)" "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$port" \
    -U replicator -D "$dir" -X stream -S "${name}_slot" -R --checkpoint=fast
  echo "$upstream" >"$dir/upstream"
  chown "$RUN_USER" "$dir/upstream"
  write_node_conf "$name"
}

# Stops a replica, deletes it and its slot on its upstream.
remove_replica() { # $1 replicaN
  local name=$1 upstream
  upstream=$(cat "$(node_dir "$name")/upstream" 2>/dev/null || echo primary)
  stop_node "$name"; rm -rf "$(node_dir "$name")"
  node_running "$upstream" && admin_psql "$(node_port "$upstream")" -d postgres -c \
    "SELECT pg_drop_replication_slot('${name}_slot') FROM pg_replication_slots WHERE slot_name = '${name}_slot'" >/dev/null
  return 0
}

start_node() {
  local name=$1 dir; dir=$(node_dir "$name")
  node_running "$name" && return 0
  refuse_taken_port "$(node_port "$name")" "$name"
  if ! as_db_user "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null; then
    tail -n 5 "$dir/server.log" >&2 || true # the reason, for a caller that removes the directory
    die "$name did not start; see $dir/server.log"
  fi
}

stop_node() {
  local name=$1
  [[ -d $(node_dir "$name") ]] || die "no node '$name' in $CLUSTER_DIR"
  node_running "$name" || return 0
  as_db_user "$PG_BIN/pg_ctl" -D "$(node_dir "$name")" -m fast -w -t 60 stop >/dev/null
}

bouncer_pid() { local f="$CLUSTER_DIR/pgbouncer/pgbouncer.pid"; [[ -s $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }

write_pgbouncer_conf() {
  local name readers=() analytics; analytics=$(analytics_node)
  for name in $(replica_names); do readers+=("$name:$(node_port "$name")"); done
  write_pgbouncer_conf_for "$PG_PORT" "$PG_PORT" "${analytics:+$(node_port "$analytics")}" "${readers[@]}"
}

# $1 the primary's port (the failover topology: HAProxy's), $2 a superuser socket port to read the
# roles' verifiers from, $3 the analysts' node's port (or empty), then the read entries as NAME:PORT.
write_pgbouncer_conf_for() {
  local dir="$CLUSTER_DIR/pgbouncer" primary_port=$1 admin_port=$2 analytics_port=$3 entry
  shift 3
  mkdir -p "$dir"
  {
    echo "[databases]"
    echo "primary = host=127.0.0.1 port=$primary_port dbname=$DB_NAME"
    for entry in "$@"; do echo "${entry%%:*} = host=127.0.0.1 port=${entry##*:} dbname=$DB_NAME"; done
    # Analysts get their own small pool on one replica (pg_hba lets them in nowhere else): at most
    # two analyst queries run at once, so they cannot take the replica's connections from the API.
    [[ -z $analytics_port ]] || echo "analytics = host=127.0.0.1 port=$analytics_port dbname=$DB_NAME pool_size=2 max_db_connections=2"
    cat <<CONF

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
# hba: each role may open only its own pooled databases (the owner none but the admin console).
auth_type = hba
auth_hba_file = $dir/pgbouncer_hba.conf
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 4000
default_pool_size = 20
reserve_pool_size = 5
reserve_pool_timeout = 1
server_lifetime = 3600
server_idle_timeout = 60
# A node that is down must fail queued clients quickly, not after the 120 s default: the API's
# router then retries the read elsewhere or answers 503 for a write.
query_wait_timeout = 5
server_connect_timeout = 3
server_login_retry = 1
# Clients send these at start-up; they are harmless to drop under transaction pooling.
ignore_startup_parameters = extra_float_digits,options
admin_users = pgrag
stats_users = pgrag
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
CONF
  } >"$dir/pgbouncer.ini"
  {
    echo "host  primary    pgrag_app      127.0.0.1/32  scram-sha-256"
    for entry in "$@"; do echo "host  ${entry%%:*}   pgrag_app      127.0.0.1/32  scram-sha-256"; done
    echo "host  analytics  pgrag_analyst  127.0.0.1/32  scram-sha-256"
    echo "host  pgbouncer  pgrag          127.0.0.1/32  scram-sha-256"
  } >"$dir/pgbouncer_hba.conf"
  # SCRAM verifiers, not passwords: PgBouncer checks clients against them and, since they are the
  # servers' own, logs in to the servers with the client's proof. A stolen file reveals no password.
  admin_psql "$admin_port" -d postgres -At -c \
    "SELECT format('\"%s\" \"%s\"', rolname, rolpassword) FROM pg_authid WHERE rolname IN ('pgrag', 'pgrag_app', 'pgrag_analyst') ORDER BY 1" \
    >"$dir/userlist.txt"
  chmod 600 "$dir/userlist.txt" "$dir/pgbouncer_hba.conf"
  chown -R "$RUN_USER" "$dir"
}

start_pgbouncer() {
  [[ -n $(bouncer_pid || true) ]] && return 0
  refuse_taken_port "$BOUNCER_PORT" pgbouncer
  as_db_user pgbouncer -d -q "$CLUSTER_DIR/pgbouncer/pgbouncer.ini"
  # On a loaded 2-core machine PgBouncer has taken over 5 s to listen; give it 30.
  local i
  for i in $(seq 1 300); do port_in_use "$BOUNCER_PORT" && return 0; sleep 0.1; done
  die "pgbouncer did not start within 30 s; see $CLUSTER_DIR/pgbouncer/pgbouncer.log"
}

stop_pgbouncer() {
  local pid i
  pid=$(bouncer_pid || true)
  [[ -n $pid ]] || return 0
  kill -INT "$pid"
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

write_env_file() { write_env_file_for "$PG_PORT" $(replica_names); }

# $1 the port migrations reach the primary on (not pooled: they hold session locks), then the reader names.
write_env_file_for() {
  local host="127.0.0.1:$BOUNCER_PORT" migration_port=$1 name replicas=""
  shift
  for name in "$@"; do
    replicas+="${replicas:+,}postgres://pgrag_app:$(secret pgrag_app)@$host/$name"
  done
  cat >"$ENV_FILE" <<ENV
# Written by replicas/cluster.sh; the API reads it through PGRAG_ENV_FILE.
PGRAG_PRIMARY_URL=postgres://pgrag_app:$(secret pgrag_app)@$host/primary
PGRAG_REPLICA_URLS=$replicas
PGRAG_MIGRATION_URL=postgres://pgrag:$(secret pgrag)@127.0.0.1:$migration_port/$DB_NAME
PGRAG_ANALYST_URL=postgres://pgrag_analyst:$(secret pgrag_analyst)@$host/analytics
PGRAG_CLUSTER_DIR=$CLUSTER_DIR
ENV
  chmod 600 "$ENV_FILE"
}

cmd_up() {
  local want=2 cascade=false ha=false replicas_given=false
  while (($#)); do
    case "$1" in
      --replicas) want=${2:?--replicas needs a number}; replicas_given=true; shift 2 ;;
      --cascade) cascade=true; shift ;;
      --ha) ha=true; shift ;;
      *) die "unknown option '$1'" ;;
    esac
  done
  [[ $want =~ ^[0-9]+$ ]] || die "--replicas takes a whole number"
  mkdir -p "$CLUSTER_DIR/secrets" "$SOCK_DIR"
  chmod 700 "$CLUSTER_DIR/secrets" "$SOCK_DIR"
  chown "$RUN_USER" "$CLUSTER_DIR" "$SOCK_DIR"
  # Let the database user reach the cluster directory even when its parents are root's.
  chmod 755 "$CLUSTER_DIR"
  if [[ $ha == true ]] || is_ha; then
    [[ $cascade == false ]] || die "--cascade is for the plain topology"
    # An existing failover cluster keeps its size unless --replicas says otherwise.
    [[ $replicas_given == true ]] || ! is_ha || want=$(($(member_names | wc -l) - 1))
    ha_up $((want + 1))
    return
  fi

  if [[ -d $(node_dir primary) ]]; then start_node primary; grant_monitoring "$PG_PORT"; else init_primary; fi
  enable_archiving
  local i name upstream
  # Replicas beyond the wanted count are stopped and forgotten, so `up --replicas 1` after 2 shrinks;
  # so is a replica streaming from another upstream than asked (cascaded or not), to be made anew.
  for name in $(replica_names); do
    upstream=$(cat "$(node_dir "$name")/upstream" 2>/dev/null || echo primary)
    if ((${name#replica} > want)) || [[ $upstream != "$(upstream_of "$name" "$cascade")" ]]; then
      remove_replica "$name"
    fi
  done
  for ((i = 1; i <= want; i++)); do
    name="replica$i"
    [[ -d $(node_dir "$name") ]] || init_replica "$name" "$(upstream_of "$name" "$cascade")"
    start_node "$name"
  done
  refresh_access_rules
  write_pgbouncer_conf
  if [[ -n $(bouncer_pid || true) ]]; then
    kill -HUP "$(bouncer_pid)" # reload: picks up a changed replica list
  else
    start_pgbouncer
  fi
  write_env_file
  log "up: primary :$PG_PORT, $want replica(s)$([[ $cascade == true ]] && ((want >= 3)) && echo ", 3+ cascaded from replica1"), pgbouncer :$BOUNCER_PORT"
  log "connection settings written to $ENV_FILE (passwords shown as ***):"
  grep -v '^#' "$ENV_FILE" | sed 's/:[^:@/]*@/:***@/g'
}

is_ha() { [[ -d $CLUSTER_DIR/pg1 ]]; }

# The port of the server that is the primary now: fixed in the plain topology, Patroni's leader's.
primary_port() {
  if is_ha; then
    local leader; leader=$(ha_leader)
    [[ -n $leader ]] || die "no member is the primary right now"
    member_port "$leader"
  else
    echo "$PG_PORT"
  fi
}

cmd_down() {
  is_ha && { ha_down; return; }
  stop_pgbouncer
  local name
  for name in $(replica_names); do stop_node "$name"; done
  [[ -d $(node_dir primary) ]] && stop_node primary
  log "down"
}

cmd_status() {
  local name port state
  is_ha && { ha_status; return; }
  [[ -d $(node_dir primary) ]] || { log "no cluster in $CLUSTER_DIR"; return 0; }
  for name in primary $(replica_names); do
    port=$(node_port "$name")
    if node_running "$name"; then
      state=$(admin_psql "$port" -d postgres -At -c \
        "SELECT CASE WHEN pg_is_in_recovery() THEN 'replica of $(cat "$(node_dir "$name")/upstream" 2>/dev/null || echo primary), replay lag ' || coalesce(round(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::numeric, 2)::text || ' s', 'unknown') ELSE 'primary, wal ' || pg_current_wal_lsn() END")
      printf '%-10s :%-5s up    %s\n' "$name" "$port" "$state"
    else
      printf '%-10s :%-5s down\n' "$name" "$port"
    fi
  done
  if [[ -n $(bouncer_pid || true) ]]; then printf '%-10s :%-5s up\n' pgbouncer "$BOUNCER_PORT"; else printf '%-10s :%-5s down\n' pgbouncer "$BOUNCER_PORT"; fi
}

cmd_backup() {
  local type=full
  while (($#)); do
    case "$1" in
      --type) type=${2:?--type needs full, diff or incr}; shift 2 ;;
      *) die "unknown option '$1'" ;;
    esac
  done
  [[ $type =~ ^(full|diff|incr)$ ]] || die "--type is full, diff or incr"
  pgbackrest_ --type="$type" backup
  pgbackrest_ info
}

cmd_restore_point() { # $1 name
  local name=${1:?restore-point needs a name}
  [[ $name =~ ^[A-Za-z0-9_.-]{1,60}$ ]] || die "a restore point's name is 1-60 letters, digits, '_', '.' or '-'"
  local lsn; lsn=$(admin_psql "$(primary_port)" -d postgres -At -c "SELECT pg_create_restore_point('$name')")
  # Remembered beside the backups: a restore to the name starts from the last backup before it.
  printf '%s %s\n' "$name" "$lsn" >>"$BACKUP_DIR/restore-points"
  # Switches to a new WAL segment and waits until the one holding the point is in the repository.
  pgbackrest_ check
  log "restore point '$name' at $lsn"
}

lsn_number() { local hi=${1%/*} lo=${1#*/}; echo $(((16#$hi << 32) + 16#$lo)); }

# The newest backup that ended at or before an LSN: recovery can only replay forwards from a backup.
backup_set_before() { # $1 lsn
  local target; target=$(lsn_number "$1")
  pgbackrest_ info --output=json | node -e '
    const target = BigInt(process.argv[1]);
    const lsn = (text) => { const [hi, lo] = text.split("/"); return (BigInt("0x" + hi) << 32n) + BigInt("0x" + lo); };
    const backups = JSON.parse(require("fs").readFileSync(0, "utf8"))[0]?.backup ?? [];
    const before = backups.filter((b) => lsn(b.lsn.stop) <= target);
    if (before.length === 0) process.exit(1);
    console.log(before.at(-1).label);' "$target"
}

cmd_restore() {
  local to="" into="" port=$((PG_PORT + 90)) type target
  while (($#)); do
    case "$1" in
      --to) to=${2:?--to needs name:NAME, time:TIME or lsn:LSN}; shift 2 ;;
      --into) into=${2:?--into needs a directory}; shift 2 ;;
      --port) port=${2:?--port needs a number}; shift 2 ;;
      *) die "unknown option '$1'" ;;
    esac
  done
  [[ -n $into ]] || die "--into DIR: the new data directory (it must not exist yet, or be empty)"
  local position="" set=()
  case "$to" in
    name:?*) type=name; target=${to#name:}
      position=$(awk -v n="$target" '$1 == n { p = $2 } END { print p }' "$BACKUP_DIR/restore-points" 2>/dev/null || true) ;;
    time:?*) type=time; target=${to#time:} ;; # pgBackRest picks the last backup before a time itself
    lsn:?*) type=lsn; target=${to#lsn:}; position=$target
      [[ $target =~ ^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$ ]] || die "an LSN looks like 0/3000028" ;;
    *) die "--to takes name:NAME, time:TIME (e.g. time:'2026-12-07 10:00:00+00') or lsn:LSN (e.g. lsn:0/3000028)" ;;
  esac
  if [[ -n $position ]]; then
    set=(--set="$(backup_set_before "$position")") || die "no backup ended before $position: nothing to restore from"
  elif [[ $type == name ]]; then
    # A point made with SQL, not by restore-point: the oldest backup can replay to anything after it.
    set=(--set="$(pgbackrest_ info --output=json | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8"))[0].backup[0].label)')")
  fi
  [[ ! -e $into ]] || [[ -z $(ls -A "$into") ]] || die "$into is not empty: restore into a new directory"
  refuse_taken_port "$port" "the restored server"
  # With the primary up, everything committed so far reaches the repository before recovery reads it.
  if is_ha; then [[ -z $(ha_leader) ]] || pgbackrest_ check; else node_running primary && pgbackrest_ check; fi
  mkdir -p "$into"; chown "$RUN_USER" "$into"; chmod 700 "$into"
  log "restoring to $type '$target' into $into"
  # archive-mode=off: the restored server must not archive its own WAL into the source's repository.
  pgbackrest_ --pg1-path="$into" --type="$type" --target="$target" --target-action=promote \
    --archive-mode=off "${set[@]}" restore
  cat >"$into/node.conf" <<CONF
port = $port
cluster_name = 'pgrag-restored'
CONF
  chown "$RUN_USER" "$into/node.conf"
  as_db_user "$PG_BIN/pg_ctl" -D "$into" -l "$into/server.log" -w -t 300 start >/dev/null \
    || die "the restored server did not start; see $into/server.log"
  local i
  for i in $(seq 1 600); do
    [[ $(admin_psql "$port" -d postgres -At -c "SELECT pg_is_in_recovery()") == f ]] && break
    ((i < 600)) || die "the restored server did not finish recovery within 5 minutes; see $into/server.log"
    sleep 0.5
  done
  log "restored: a server on :$port (socket $SOCK_DIR) recovered to $type '$target', accepting writes"
}

cmd_discard_restore() { # $1 dir
  local dir=${1:?discard-restore needs the restored directory}
  [[ -f $dir/PG_VERSION ]] || die "$dir is not a data directory"
  [[ $dir != "$(node_dir primary)" && $dir != "$CLUSTER_DIR"/replica* ]] || die "$dir belongs to the cluster"
  as_db_user "$PG_BIN/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

# shellcheck source=replicas/ha.sh
. "$SCRIPT_DIR/ha.sh"

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  stop-node) if is_ha; then stop_member "${2:?stop-node needs a member name}"; else stop_node "${2:?stop-node needs a node name}"; fi ;;
  start-node) if is_ha; then start_member "${2:?start-node needs a member name}"; else start_node "${2:?start-node needs a node name}"; fi ;;
  leader) ha_leader ;;
  fault) shift; is_ha || die "faults are for the failover topology (up --ha)"; ha_fault "$@" ;;
  post-bootstrap) create_database "$(member_port pg1)" ;;
  restart-pgbouncer) stop_pgbouncer; start_pgbouncer ;;
  backup) shift; cmd_backup "$@" ;;
  restore-point) cmd_restore_point "${2:-}" ;;
  restore) shift; cmd_restore "$@" ;;
  discard-restore) cmd_discard_restore "${2:-}" ;;
  *) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
