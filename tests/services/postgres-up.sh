#!/usr/bin/env bash
# A private PostgreSQL (Debian's, 15 here) for the test suite: a new cluster in $BASE, listening on
# 127.0.0.1:$PORT and on a socket in $BASE, no password (trust), fsync off. Installs postgresql
# when missing. Must run as root (initdb runs as the postgres user, which must be able to reach
# $BASE: do not put it under a mode-700 directory). Prints the SQLAlchemy URL of the server.
#   BASE=/tmp/cf-pg PORT=25432 ./postgres-up.sh
set -euo pipefail
: "${BASE:?set BASE to a new directory}" "${PORT:?set PORT to a free TCP port}"

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
B="${PG_BIN:-$(pg_bin)}"
if [ -z "$B" ] || [ ! -x "$B/initdb" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q postgresql >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
  B="$(pg_bin)"
fi
[ -x "$B/initdb" ] || { echo "no initdb found under /usr/lib/postgresql" >&2; exit 1; }

install -d -m 0755 -o postgres -g postgres "$BASE"
runuser -u postgres -- "$B/initdb" -N -A trust -U postgres --no-locale -E UTF8 -D "$BASE/data" >"$BASE/initdb.log" 2>&1 \
  || { cat "$BASE/initdb.log" >&2; exit 1; }
OPTS="-p $PORT -k $BASE -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
if ! runuser -u postgres -- "$B/pg_ctl" -D "$BASE/data" -l "$BASE/log" -w -t 180 -o "$OPTS" start >/dev/null; then
  cat "$BASE/log" >&2
  exit 1
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
