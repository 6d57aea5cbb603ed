# shellcheck shell=bash
# The failover topology, sourced by cluster.sh (`cluster.sh up --ha`): every PostgreSQL server is a
# Patroni member with etcd as the store, one synchronous standby (Patroni's synchronous_mode), slots
# and pg_rewind; HAProxy sends the primary's traffic to whichever member Patroni's REST API calls the
# leader (/primary); PgBouncer has the primary entry through HAProxy and one entry per member for
# reads. Members are pg1…pgN on PG_PORT…PG_PORT+N-1. With three or more members the last one serves
# the analysts and is tagged nofailover and nosync: it never becomes primary or the synchronous standby.
#
# Ports beside PG_PORT: HAProxy PG_PORT+10, member i's REST API PG_PORT+20+i, etcd PG_PORT+30 (peers +31).

HA_DIR="$CLUSTER_DIR/ha"
HAPROXY_PORT=$((PG_PORT + 10))
ETCD_PORT=$((PG_PORT + 30))
ETCD_PEER_PORT=$((PG_PORT + 31))
SCOPE=pgrag
# Leader lease and loop: a crashed primary's lease expires after TTL s; Patroni needs
# loop_wait + 2 × retry_timeout ≤ ttl.
HA_TTL=${PGRAG_HA_TTL:-10}
HA_LOOP_WAIT=${PGRAG_HA_LOOP_WAIT:-2}
HA_RETRY_TIMEOUT=$(((HA_TTL - HA_LOOP_WAIT) / 2))

ha_require_tools() {
  local tool
  for tool in patroni patronictl etcd haproxy; do
    command -v "$tool" >/dev/null || die "$tool not found: run replicas/install.sh first"
  done
}

member_names() { local d; for d in "$CLUSTER_DIR"/pg[0-9]*; do [[ -d $d ]] && basename "$d"; done | sort -V || true; }
member_index() { echo "${1#pg}"; }
member_port() { echo $((PG_PORT + $(member_index "$1") - 1)); }
member_rest_port() { echo $((PG_PORT + 20 + $(member_index "$1"))); }
member_config() { echo "$CLUSTER_DIR/$1/patroni.yml"; }
member_data() { echo "$CLUSTER_DIR/$1/data"; }
ha_analytics_member() { member_names | tail -n 1; }
ha_is_analytics_only() { # $1 member: nofailover/nosync only when two others remain to fail over between
  (($(member_names | wc -l) >= 3)) && [[ $1 == "$(member_names | tail -n 1)" ]]
}

patronictl_() { as_db_user patronictl -c "$(member_config "$(member_names | head -n 1)")" "$@"; }

# The member that runs as primary now, by asking each one (empty while there is none). A frozen
# member accepts the connection and never answers: each is given two seconds.
ha_leader() {
  local name
  for name in $(member_names); do
    if [[ $(PGCONNECT_TIMEOUT=2 admin_psql "$(member_port "$name")" -d postgres -At -c "SELECT NOT pg_is_in_recovery()" 2>/dev/null) == t ]]; then
      echo "$name"; return 0
    fi
  done
  return 0
}

ha_pid() { pgrep -u "$RUN_USER" -f -- "$1" | head -n 1 || true; }
member_patroni_pid() { ha_pid "patroni $(member_config "$1")"; }
member_postmaster_pid() { local f; f="$(member_data "$1")/postmaster.pid"; [[ -s $f ]] && head -n 1 "$f" || true; }
# Patroni, the postmaster and every server process of a member (for SIGSTOP / SIGCONT).
member_pids() {
  local postmaster; postmaster=$(member_postmaster_pid "$1")
  echo "$(member_patroni_pid "$1") $postmaster ${postmaster:+$(pgrep -P "$postmaster" | xargs || true)}"
}
etcd_pid() { ha_pid "etcd --name $SCOPE --data-dir $HA_DIR/etcd"; }
haproxy_pid() { local f="$HA_DIR/haproxy.pid"; [[ -s $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }

start_detached() { # $1 log file, rest: command (as the database user, in a session of its own)
  local logfile=$1; shift
  if [[ $(id -u) -eq 0 ]]; then
    setsid -f runuser -u postgres -- "$@" >>"$logfile" 2>&1 </dev/null
  else
    setsid -f "$@" >>"$logfile" 2>&1 </dev/null
  fi
}

start_etcd() {
  [[ -n $(etcd_pid) ]] && return 0
  refuse_taken_port "$ETCD_PORT" etcd
  mkdir -p "$HA_DIR/etcd"; chown "$RUN_USER" "$HA_DIR" "$HA_DIR/etcd"; chmod 700 "$HA_DIR/etcd"
  start_detached "$HA_DIR/etcd.log" etcd --name "$SCOPE" --data-dir "$HA_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "$SCOPE=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new --enable-v2=true
  local i
  for i in $(seq 1 300); do port_in_use "$ETCD_PORT" && return 0; sleep 0.1; done
  die "etcd did not start within 30 s; see $HA_DIR/etcd.log"
}

# The servers' settings, shared with the plain topology, as Patroni's YAML parameters.
ha_parameters_yaml() {
  server_settings | grep -v -e '^#' -e '^$' | while IFS='=' read -r name value; do
    name=$(echo "$name" | xargs); value=$(echo "$value" | sed "s/^ *//; s/^'//; s/'$//")
    printf "        %s: '%s'\n" "$name" "${value//\'/\'\'}"
  done
}

write_member_config() { # $1 member
  local name=$1 port rest data nofailover=false nosync=false analyst_line=""
  port=$(member_port "$name"); rest=$(member_rest_port "$name"); data=$(member_data "$name")
  if ha_is_analytics_only "$name"; then nofailover=true; nosync=true; fi
  [[ $name == "$(ha_analytics_member)" ]] && analyst_line="    - host $DB_NAME pgrag_analyst 127.0.0.1/32 scram-sha-256"
  mkdir -p "$CLUSTER_DIR/$name"
  cat >"$(member_config "$name")" <<YAML
# Written by replicas/cluster.sh (the failover topology).
scope: $SCOPE
name: $name
log:
  dir: $CLUSTER_DIR/$name
  file_num: 2
restapi:
  listen: 127.0.0.1:$rest
  connect_address: 127.0.0.1:$rest
# etcd's v2 API, not v3: Debian 12's Patroni 3.0.2 renews the leader key over v3 without checking
# who holds it, so a leader frozen past its lease took the key back from its successor when it
# resumed (seen here; fixed upstream in Patroni 3.0.3). Over v2 the renewal is a compare-and-swap on
# the leader's own name, which fails, and the resumed node demotes itself.
etcd:
  host: 127.0.0.1:$ETCD_PORT
bootstrap:
  dcs:
    ttl: $HA_TTL
    loop_wait: $HA_LOOP_WAIT
    retry_timeout: $HA_RETRY_TIMEOUT
    maximum_lag_on_failover: 1048576
    # A commit is acknowledged once one standby has it: the standby Patroni may promote.
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
$(ha_parameters_yaml)
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - data-checksums
    - auth-local: trust
    - auth-host: scram-sha-256
  post_bootstrap: $HA_DIR/post-bootstrap.sh
postgresql:
  listen: 127.0.0.1:$port
  connect_address: 127.0.0.1:$port
  data_dir: $data
  bin_dir: $PG_BIN
  pgpass: $CLUSTER_DIR/$name/pgpass
  use_unix_socket: true
  # A new replica's base backup starts with an immediate checkpoint, not a spread one.
  basebackup:
    - checkpoint: fast
  # Recovery may need WAL no member streams any more (a rewound former primary's crash recovery
  # runs before it streams): the archive has it. A member that cannot be rewound is cloned anew.
  recovery_conf:
    restore_command: 'pgbackrest --config=$PGBACKREST_CONF --stanza=$STANZA --pg1-path=$data archive-get %f "%p"'
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  authentication:
    superuser:
      username: postgres
      password: '$(secret postgres)'
    replication:
      username: replicator
      password: '$(secret replicator)'
  parameters:
    unix_socket_directories: '$SOCK_DIR'
    cluster_name: 'pgrag-$name'
    archive_mode: 'on'
    archive_command: 'pgbackrest --config=$PGBACKREST_CONF --stanza=$STANZA --pg1-path=$data archive-push %p'
    archive_timeout: '60'
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all postgres 127.0.0.1/32 scram-sha-256
    # Any member may become the primary: the owner (migrations) and the app may log in on each.
    - host all pgrag 127.0.0.1/32 scram-sha-256
    - host $DB_NAME pgrag_app 127.0.0.1/32 scram-sha-256
$analyst_line
watchdog:
  mode: off
tags:
  nofailover: $nofailover
  nosync: $nosync
  noloadbalance: false
  clonefrom: false
YAML
  chown -R "$RUN_USER" "$CLUSTER_DIR/$name"
  chmod 600 "$(member_config "$name")"
}

write_post_bootstrap() {
  mkdir -p "$HA_DIR"
  cat >"$HA_DIR/post-bootstrap.sh" <<SH
#!/usr/bin/env bash
# Run by Patroni once, on the member that initialises the cluster: roles, database, extensions.
export PGRAG_CLUSTER_DIR='$CLUSTER_DIR' PGRAG_PG_PORT='$PG_PORT' PGRAG_PGBOUNCER_PORT='$BOUNCER_PORT'
exec bash '$SCRIPT_DIR/cluster.sh' post-bootstrap
SH
  chmod 755 "$HA_DIR/post-bootstrap.sh"
  chown -R "$RUN_USER" "$HA_DIR"
}

start_member() { # $1 member
  [[ -n $(member_patroni_pid "$1") ]] && return 0
  refuse_taken_port "$(member_port "$1")" "$1"
  start_detached "$CLUSTER_DIR/$1/patroni.out" patroni "$(member_config "$1")"
}

stop_member() { # $1 member: Patroni stops its server (a leader hands its lease back)
  local pid i
  pid=$(member_patroni_pid "$1")
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

write_haproxy_conf() {
  local name
  {
    cat <<CONF
# Written by replicas/cluster.sh: the primary's entry follows Patroni's leader.
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 3s
  # PgBouncer keeps server connections idle for up to a minute; sessions outlive that.
  timeout client 30m
  timeout server 30m
  timeout check 2s
listen primary
  bind 127.0.0.1:$HAPROXY_PORT
  option httpchk OPTIONS /primary
  http-check expect status 200
  # Checked every second; a member that stops being the leader loses its sessions at once, so no
  # client stays connected to a demoted (or frozen) primary.
  default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
CONF
    for name in $(member_names); do
      echo "  server $name 127.0.0.1:$(member_port "$name") maxconn 200 check port $(member_rest_port "$name")"
    done
  } >"$HA_DIR/haproxy.cfg"
  chown "$RUN_USER" "$HA_DIR/haproxy.cfg"
}

start_haproxy() {
  if [[ -n $(haproxy_pid || true) ]]; then
    # Reload with the member list as written; the old process hands its sessions over.
    as_db_user haproxy -D -f "$HA_DIR/haproxy.cfg" -p "$HA_DIR/haproxy.pid" -sf "$(haproxy_pid)"
    return 0
  fi
  refuse_taken_port "$HAPROXY_PORT" haproxy
  as_db_user haproxy -D -f "$HA_DIR/haproxy.cfg" -p "$HA_DIR/haproxy.pid"
}

stop_haproxy() {
  local pid; pid=$(haproxy_pid || true)
  [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null
  rm -f "$HA_DIR/haproxy.pid"
  return 0
}

stop_etcd() {
  local pid i; pid=$(etcd_pid)
  [[ -n $pid ]] || return 0
  kill -TERM "$pid"
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# Waits until, in Patroni's own view, a leader runs, every other member runs on its timeline and one
# is its synchronous standby: until then Patroni neither switches over nor fails over.
ha_wait_ready() { # $1 seconds
  local i
  for i in $(seq 1 $(($1 * 2))); do
    if patronictl_ list -f json 2>/dev/null | node -e '
      const members = JSON.parse(require("fs").readFileSync(0, "utf8") || "[]");
      const leader = members.find((m) => m.Role === "Leader" && m.State === "running");
      const ready = leader && members.length === Number(process.argv[1])
        && members.every((m) => (m.State === "running" || m.State === "streaming") && m.TL === leader.TL)
        && members.some((m) => m.Role === "Sync Standby");
      process.exit(ready ? 0 : 1);' "$(member_names | wc -l)"; then return 0; fi
    sleep 0.5
  done
  patronictl_ list >&2 || true
  die "the failover topology was not ready within $1 s; see $CLUSTER_DIR/pg*/patroni.log"
}

ha_pgbackrest_conf() { # pgBackRest finds the primary among the members
  write_pgbackrest_conf_with "$(
    local name i=1
    for name in $(member_names); do
      printf 'pg%s-path=%s\npg%s-port=%s\npg%s-socket-path=%s\npg%s-user=postgres\n' \
        "$i" "$(member_data "$name")" "$i" "$(member_port "$name")" "$i" "$SOCK_DIR" "$i"
      i=$((i + 1))
    done
  )"
}

ha_up() { # $1 members wanted
  local want=$1 i name
  ha_require_tools
  ((want >= 2)) || die "the failover topology needs at least one replica (--replicas 1 or more)"
  if [[ -d $(node_dir primary) ]]; then die "$CLUSTER_DIR holds the plain topology: bring the failover one up in another PGRAG_CLUSTER_DIR"; fi
  ensure_secret postgres; ensure_secret replicator; ensure_secret pgrag; ensure_secret pgrag_app; ensure_secret pgrag_analyst
  chown -R "$RUN_USER" "$CLUSTER_DIR/secrets"
  local existing; existing=$(member_names | wc -l)
  ((existing == 0 || existing == want)) || die "$CLUSTER_DIR has $existing members; the failover topology does not resize (down, delete the directory, up again)"
  for ((i = 1; i <= want; i++)); do mkdir -p "$CLUSTER_DIR/pg$i"; done
  write_post_bootstrap
  ha_pgbackrest_conf
  for name in $(member_names); do write_member_config "$name"; done
  start_etcd
  if [[ ! -d $(member_data pg1) ]]; then
    # A new cluster: the first member alone initialises it; the others then clone from it, once the
    # archive exists (a base backup waits until its WAL is archived).
    start_member pg1
    for i in $(seq 1 240); do [[ -n $(ha_leader) ]] && break; sleep 0.5; done
    [[ -n $(ha_leader) ]] || die "no leader within 2 minutes; see $CLUSTER_DIR/pg1/patroni.log"
    pgbackrest_ --log-level-console=error stanza-create >/dev/null
  fi
  # Members of an existing cluster start together: whichever Patroni may promote becomes the leader.
  for name in $(member_names); do start_member "$name"; done
  ha_wait_ready 300
  write_haproxy_conf
  start_haproxy
  local readers=()
  for name in $(member_names); do readers+=("$name:$(member_port "$name")"); done
  write_pgbouncer_conf_for "$HAPROXY_PORT" "$(member_port "$(ha_leader)")" "$(member_port "$(ha_analytics_member)")" "${readers[@]}"
  if [[ -n $(bouncer_pid || true) ]]; then kill -HUP "$(bouncer_pid)"; else start_pgbouncer; fi
  write_env_file_for "$HAPROXY_PORT" $(member_names)
  log "up: failover topology, members $(member_names | xargs) (leader $(ha_leader)), HAProxy :$HAPROXY_PORT, etcd :$ETCD_PORT, pgbouncer :$BOUNCER_PORT"
  grep -v '^#' "$ENV_FILE" | sed 's/:[^:@/]*@/:***@/g'
}

ha_down() {
  stop_pgbouncer
  stop_haproxy
  local leader name; leader=$(ha_leader)
  # Replicas first: stopping the leader while they run would start a failover.
  for name in $(member_names); do [[ $name == "$leader" ]] || stop_member "$name"; done
  [[ -z $leader ]] || stop_member "$leader"
  stop_etcd
  log "down"
}

ha_status() {
  patronictl_ list || true
  printf '%-10s :%-5s %s\n' haproxy "$HAPROXY_PORT" "$([[ -n $(haproxy_pid || true) ]] && echo up || echo down)"
  printf '%-10s :%-5s %s\n' pgbouncer "$BOUNCER_PORT" "$([[ -n $(bouncer_pid || true) ]] && echo up || echo down)"
}

# Fault injection for the failover tests and bench:failover.
ha_fault() { # $1 switchover|kill|freeze|thaw  [$2 member]
  local what=$1 target=${2:-} leader="" pids
  # Patroni promotes only the synchronous standby: each fault starts from a cluster that has one.
  [[ $what == thaw ]] || { ha_wait_ready 120; leader=$(ha_leader); }
  case "$what" in
    switchover)
      [[ -n $leader ]] || die "no leader to switch over from"
      patronictl_ switchover --leader "$leader" ${target:+--candidate "$target"} --force >/dev/null
      local i now=""
      for i in $(seq 1 120); do
        now=$(ha_leader); [[ -n $now && $now != "$leader" ]] && break
        sleep 0.5
      done
      [[ -n $now && $now != "$leader" ]] || die "the switchover from $leader did not happen; see $CLUSTER_DIR/pg*/patroni.log"
      log "switched over from $leader to $now" ;;
    kill)
      target=${target:-$leader}; [[ -n $target ]] || die "no leader to kill"
      pids="$(member_patroni_pid "$target") $(member_postmaster_pid "$target")"
      # SIGKILL of Patroni and the postmaster: the children (backends) die with the postmaster.
      kill -KILL $pids 2>/dev/null || true
      echo "$target" ;;
    freeze)
      target=${target:-$leader}; [[ -n $target ]] || die "no leader to freeze"
      # A process that exits meanwhile fails its kill; the others are frozen all the same.
      kill -STOP $(member_pids "$target") 2>/dev/null || true
      echo "$target" ;;
    thaw)
      [[ -n $target ]] || die "thaw needs the member that was frozen"
      kill -CONT $(member_pids "$target") 2>/dev/null || true ;;
    *) die "unknown fault '$what' (switchover, kill, freeze, thaw)" ;;
  esac
}
