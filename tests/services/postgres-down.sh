#!/usr/bin/env bash
# Stop the PostgreSQL started by postgres-up.sh and remove its directory.
#   BASE=/tmp/cf-pg ./postgres-down.sh
set -uo pipefail
: "${BASE:?set BASE to the directory given to postgres-up.sh}"
B="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
if [ -f "$BASE/data/postmaster.pid" ]; then
  runuser -u postgres -- "$B/pg_ctl" -D "$BASE/data" -m fast -w -t 30 stop >/dev/null \
    || kill -9 "$(head -n 1 "$BASE/data/postmaster.pid")" 2>/dev/null
fi
rm -rf "$BASE"
