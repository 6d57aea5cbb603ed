#!/usr/bin/env bash
# Installs what the native topology needs on Debian 12 (bookworm) or 13 (trixie), as root:
# PostgreSQL, pgvector >= 0.8, PgBouncer and pgBackRest, and for the failover topology Patroni, etcd
# and HAProxy. Idempotent, and quick when everything is present.
set -euo pipefail

MIN_PGVECTOR="0.8.0"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (it installs Debian packages)"
. /etc/os-release
case "${VERSION_ID:-}" in
  12) PG_MAJOR=15 ;;
  13) PG_MAJOR=17 ;;
  *) die "Debian 12 or 13 expected, found '${PRETTY_NAME:-unknown}'" ;;
esac

version_at_least() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }

installed_pgvector_version() {
  local control="/usr/share/postgresql/${PG_MAJOR}/extension/vector.control"
  [[ -f $control ]] && sed -n "s/^default_version = '\(.*\)'/\1/p" "$control"
}

everything_present() {
  local v
  v=$(installed_pgvector_version || true)
  [[ -x /usr/lib/postgresql/${PG_MAJOR}/bin/postgres ]] \
    && [[ -x /usr/lib/postgresql/${PG_MAJOR}/bin/pg_basebackup ]] \
    && command -v pgbouncer >/dev/null \
    && command -v pgbackrest >/dev/null \
    && command -v patroni >/dev/null && command -v etcd >/dev/null && command -v haproxy >/dev/null \
    && [[ -n $v ]] && version_at_least "$v" "$MIN_PGVECTOR"
}

if everything_present; then
  log "PostgreSQL ${PG_MAJOR}, pgvector $(installed_pgvector_version), PgBouncer, pgBackRest, Patroni, etcd and HAProxy already installed"
  exit 0
fi

apt_updated=0
apt_update_once() { (( apt_updated )) || { apt-get update -qq; apt_updated=1; }; }

apt_update_once
log "installing PostgreSQL ${PG_MAJOR}, PgBouncer, pgBackRest, Patroni, etcd and HAProxy"
# The distribution's cluster (main) is not used: the topology makes its own data directories.
apt-get install -y -qq --no-install-recommends \
  "postgresql-${PG_MAJOR}" "postgresql-client-${PG_MAJOR}" postgresql-contrib pgbouncer pgbackrest \
  patroni etcd-server haproxy >/dev/null
# Debian's packages start a default cluster and their services; they would hold ports we may want.
if command -v pg_ctlcluster >/dev/null; then pg_ctlcluster "${PG_MAJOR}" main stop 2>/dev/null || true; fi
if command -v service >/dev/null; then
  for service in pgbouncer etcd haproxy patroni; do service "$service" stop >/dev/null 2>&1 || true; done
fi

v=$(installed_pgvector_version || true)
if [[ -n $v ]] && version_at_least "$v" "$MIN_PGVECTOR"; then
  log "pgvector $v present"
elif [[ $PG_MAJOR == 17 ]]; then
  log "installing postgresql-17-pgvector"
  apt-get install -y -qq --no-install-recommends postgresql-17-pgvector >/dev/null
else
  # Bookworm ships pgvector 0.4, too old for iterative index scans: build trixie's source package.
  log "building pgvector from Debian trixie's source package against postgresql-server-dev-${PG_MAJOR}"
  apt-get install -y -qq --no-install-recommends \
    "postgresql-server-dev-${PG_MAJOR}" build-essential dpkg-dev >/dev/null
  src_list=/etc/apt/sources.list.d/pgrag-trixie-src.sources
  if [[ ! -f $src_list ]]; then
    cat >"$src_list" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
  fi
  build_dir=$(mktemp -d)
  trap 'rm -rf "$build_dir"' EXIT
  chmod 755 "$build_dir"
  (
    cd "$build_dir"
    apt-get source --download-only pgvector >/dev/null 2>&1 || die "could not download pgvector's trixie source package"
    dpkg-source --no-check -x pgvector_*.dsc src >/dev/null
    cd src
    make -s PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" OPTFLAGS="" >/dev/null
    make -s PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" install >/dev/null
  )
fi

everything_present || die "installation finished but a component is still missing"
log "PostgreSQL ${PG_MAJOR}, pgvector $(installed_pgvector_version), PgBouncer, pgBackRest, Patroni, etcd and HAProxy installed"
