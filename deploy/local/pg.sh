#!/usr/bin/env bash
# A throwaway local PostgreSQL 15 for `make run`, `make test` and `make bench`.
#
#   pg.sh start          initdb on first use, then start (idempotent)
#   pg.sh stop           stop it (idempotent)
#   pg.sh url DB         print the connection URL of database DB
#   pg.sh createdb DB    create DB with the demo schema and data if absent
#   pg.sh recreatedb DB  drop and create DB with the demo schema and data
#   pg.sh psql DB ...    run psql against DB
#   pg.sh crash          stop it the hard way (pg_ctl stop -m immediate: no
#                        shutdown checkpoint; the next start recovers)
#
# This instance trades durability for speed (fsync, synchronous_commit and
# full_page_writes off): a crash of the machine may lose or corrupt data.
# It runs with wal_level = logical (and room for 10 replication slots and
# WAL senders) so rowgate's row cache can follow it (storage/change_feed.h),
# and wal_writer_delay = 10ms so asynchronous commits reach it quickly;
# a data directory made before that gets the settings on its next start,
# and a running server without them is restarted.
# With PG_DURABLE=1 every command acts on a second instance instead, in a
# data and socket directory of its own, with those settings on (the fault
# tests crash and restart it and check that no acknowledged write is lost).
#
# Data lives in the project-local, git-ignored .rowgate/ directory when the
# server's user can reach it, else under /tmp. It listens on a unix socket
# only (no TCP port to collide with). PostgreSQL refuses to run as root, so
# as root it runs as the `postgres` user.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
pgbin=/usr/lib/postgresql/15/bin
hash=$(printf '%s' "$project" | md5sum | cut -c1-10)
durable=${PG_DURABLE:-0}
suffix=; [ "$durable" = 1 ] && suffix=-durable
sockdir=/tmp/rowgate-pg-$hash$suffix   # short: unix socket paths are limited to 107 bytes
# The line that opens the logical replication settings in postgresql.conf.
logical_marker='# rowgate: logical replication for the row cache, v2'

# From / : the caller's working directory (e.g. a 700 mktemp checkout) may be
# closed to the postgres user, and every path used here is absolute.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

datadir() {
  local local_dir=$project/.rowgate/pgdata$suffix
  mkdir -p "$project/.rowgate"
  if [ "$(id -u)" -eq 0 ]; then
    # The postgres user must be able to traverse every parent directory.
    if runuser -u postgres -- test -x "$project/.rowgate"; then
      echo "$local_dir"; return
    fi
    echo "$sockdir/pgdata"; return
  fi
  echo "$local_dir"
}

start() {
  local data; data=$(datadir)
  mkdir -p "$sockdir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$sockdir"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$data"; fi
    as_pg "$pgbin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    local speed="fsync = off
synchronous_commit = off
full_page_writes = off"
    if [ "$durable" = 1 ]; then
      speed="fsync = on
synchronous_commit = on
full_page_writes = on"
    fi
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$sockdir'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
max_connections = 200
$speed
shared_buffers = 256MB
log_min_messages = warning
CONF
  fi
  local restart=0
  if ! grep -q "^$logical_marker" "$data/postgresql.conf"; then
    # Later lines of postgresql.conf win over earlier ones.
    as_pg tee -a "$data/postgresql.conf" >/dev/null <<CONF
$logical_marker
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
# With synchronous_commit off a commit reaches the change feed only once the
# WAL writer has flushed it: every wal_writer_delay (200ms by default).
wal_writer_delay = 10ms
CONF
    restart=1
  fi
  if as_pg "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    if [ $restart -eq 1 ] || [ "$(psql_db postgres -tAc 'SHOW wal_level')" != logical ]; then
      as_pg "$pgbin/pg_ctl" -D "$data" -l "$data/server.log" -m fast -w -t 60 restart >/dev/null
    fi
    return 0
  fi
  as_pg "$pgbin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null
}

stop() {
  local data; data=$(datadir)
  [ -f "$data/PG_VERSION" ] || return 0
  if as_pg "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg "$pgbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  fi
}

crash() {
  local data; data=$(datadir)
  as_pg "$pgbin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null
}

url() { echo "postgresql://postgres@/$1?host=$sockdir"; }

psql_db() {
  local db=$1; shift
  "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -U postgres -d "$db" "$@"
}

db_exists() {
  [ "$(psql_db postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]
}

createdb() {
  local db=$1
  if db_exists "$db"; then return 0; fi
  psql_db postgres -c "CREATE DATABASE \"$db\""
  psql_db "$db" -f "$project/deploy/schema.sql" >/dev/null
  psql_db "$db" -f "$project/deploy/sample_data.sql" >/dev/null
}

recreatedb() {
  psql_db postgres -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null
  createdb "$1"
}

cmd=${1:-}; shift || true
case "$cmd" in
  start) start ;;
  stop) stop ;;
  crash) crash ;;
  url) url "$1" ;;
  createdb) createdb "$1" ;;
  recreatedb) recreatedb "$1" ;;
  psql) psql_db "$@" ;;
  *) echo "usage: $0 start|stop|crash|url DB|createdb DB|recreatedb DB|psql DB [args]" >&2; exit 2 ;;
esac
