#!/bin/bash
# sge-down.sh - stop the SGE daemons sge-up.sh started (qconf -ke/-km ask them to exit).
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
command -v qconf >/dev/null || exit 0
qconf -ke "$(hostname)" >/dev/null 2>&1
qconf -km >/dev/null 2>&1
running(){ pgrep -x sge_qmaster >/dev/null || pgrep -x sge_execd >/dev/null; }
for _ in $(seq 60); do running || break; sleep 0.5; done
if running; then echo "SGE daemons still running" >&2; exit 1; fi
echo "SGE daemons stopped"
