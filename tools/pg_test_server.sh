#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, listening only on a Unix socket inside DIR.
#   tools/pg_test_server.sh start DIR   -> initdb (if needed), start, create database "sealcard", print its URL
#   tools/pg_test_server.sh stop DIR    -> stop the cluster (DIR is left for the caller to remove)
#   tools/pg_test_server.sh url DIR     -> print the URL again
# Run as root, the server runs as the "postgres" system user (PostgreSQL refuses to run as root).
# The URL goes to stdout, everything else to stderr, so: export SEALCARD_TEST_PG_URL=$(tools/pg_test_server.sh start DIR)
set -euo pipefail

usage() { echo "usage: $0 start|stop|url DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
ACTION=$1
DIR=$(realpath -m "$2")
DATA=$DIR/data
SOCK=$DIR/sock
PORT=${SEALCARD_PG_PORT:-5432}
DBNAME=sealcard

PG_BIN=${PG_BIN:-}
if [ -z "$PG_BIN" ]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
[ -x "$PG_BIN/initdb" ] || { echo "pg_test_server: no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
  RUN_AS=(runuser -u postgres --)
  DBUSER=postgres
else
  RUN_AS=()
  DBUSER=$(id -un)
fi

url() { echo "postgresql://${DBUSER}@/${DBNAME}?host=${SOCK}&port=${PORT}"; }

case "$ACTION" in
  start)
    mkdir -p "$DIR" "$SOCK"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$DIR" "$SOCK"; fi
    if [ ! -f "$DATA/PG_VERSION" ]; then
      "${RUN_AS[@]}" "$PG_BIN/initdb" -D "$DATA" -U "$DBUSER" --auth=trust --encoding=UTF8 --no-locale >&2
    fi
    if ! "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
      # fsync off: a test server; the tests kill clients, never this server
      "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w \
        -o "-c listen_addresses='' -c unix_socket_directories='$SOCK' -p $PORT -c fsync=off -c synchronous_commit=off" \
        start >&2
    fi
    if ! "${RUN_AS[@]}" "$PG_BIN/psql" -h "$SOCK" -p "$PORT" -U "$DBUSER" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DBNAME'" | grep -q 1; then
      "${RUN_AS[@]}" "$PG_BIN/createdb" -h "$SOCK" -p "$PORT" -U "$DBUSER" "$DBNAME" >&2
    fi
    url
    ;;
  stop)
    if [ -f "$DATA/postmaster.pid" ]; then
      "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
    fi
    ;;
  url) url ;;
  *) usage ;;
esac
