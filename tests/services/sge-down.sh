#!/bin/bash
# sge-down.sh - stop what sge-up.sh started and leave no job behind, whatever state SGE is in (also
# after an sge-up.sh that failed half-way).
#   STATE=/tmp/x bash sge-down.sh     the daemons whose pids sge-up.sh (same STATE) recorded
#   bash sge-down.sh                  without STATE: every running sge_qmaster/sge_execd
#   bash sge-down.sh --spool-only     only step 3 (sge-up.sh runs it before starting an execd)
# 1. delete every job (qdel -f) and wait, polling up to STOP_TIMEOUT s, until qstat lists none
# 2. stop the execd (qconf -ke, then SIGTERM/SIGKILL by pid)
# 3. with no execd running: end the shepherds and job process groups the execd spool still names
#    (pids written by SGE itself, each checked before it is signalled), then wipe that spool, so no
#    job comes back at the next start
# 4. stop the qmaster (qconf -km, then SIGTERM/SIGKILL by pid)
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
STATE=${STATE:-}
STOP_TIMEOUT=${STOP_TIMEOUT:-60}
SPOOL=${SGE_EXECD_SPOOL:-/var/spool/gridengine/execd}   # (a test points it elsewhere)
H=$(hostname)
comm_is(){ [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }
gone_within(){ # pid seconds
  local end=$((SECONDS + $2)); while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.2; done
  ! kill -0 "$1" 2>/dev/null
}
ours(){ # pid: started by this test run (the CF_TEST_RUN it was started with is ours)
  [ -n "${CF_TEST_RUN:-}" ] && tr '\0' '\n' < "/proc/$1/environ" 2>/dev/null | grep -qx "CF_TEST_RUN=$CF_TEST_RUN"
}
daemon_pid(){ # name: the pid recorded in STATE (else this test run's one), or (no STATE) the running one
  local p
  if [ -n "$STATE" ]; then
    p=$(cat "$STATE/${1#sge_}.pid" 2>/dev/null)
    if comm_is "$p" "$1"; then echo "$p"; return 0; fi
    # the recorded pid may be the parent of the daemon that forked (see record() in sge-up.sh)
    for p in $(pgrep -x "$1"); do ours "$p" && { echo "$p"; return 0; }; done
    return 0
  fi
  pgrep -x "$1" | head -n 1
}
stop(){ # name pid how...: ask, then SIGTERM, then SIGKILL
  local name=$1 pid=$2; shift 2
  [ -n "$pid" ] || return 0
  "$@" >/dev/null 2>&1
  gone_within "$pid" "$STOP_TIMEOUT" || { kill "$pid" 2>/dev/null; gone_within "$pid" 10; } \
    || { kill -9 "$pid" 2>/dev/null; echo "killed $name pid $pid"; return 0; }
  echo "stopped $name pid $pid"
}
wipe_spool(){
  pgrep -x sge_execd >/dev/null && return 0        # a live execd owns its spool
  local d p
  for d in "$SPOOL"/*/active_jobs/*; do
    [ -d "$d" ] || continue
    p=$(cat "$d/pid" 2>/dev/null)                  # the shepherd
    comm_is "$p" sge_shepherd && { kill -9 "$p" 2>/dev/null; echo "killed leftover sge_shepherd pid $p ($(basename "$d"))"; }
    p=$(cat "$d/job_pid" 2>/dev/null)              # the job: leader of its own process group
    if [ -n "$p" ] && [ "$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')" = "$p" ]; then
      kill -9 -- "-$p" 2>/dev/null && echo "killed leftover job process group $p ($(basename "$d"))"
    fi
  done
  rm -rf "$SPOOL"/*/active_jobs/* "$SPOOL"/*/jobs/* "$SPOOL"/*/job_scripts/* "$SPOOL"/*/execd.pid 2>/dev/null
  return 0
}

if [ "${1:-}" = --spool-only ]; then wipe_spool; exit 0; fi

# 1. jobs
if command -v qconf >/dev/null && timeout 20 qconf -sh >/dev/null 2>&1; then
  timeout 30 qdel -f -u '*' >/dev/null 2>&1
  end=$((SECONDS + STOP_TIMEOUT))
  while [ -n "$(timeout 20 qstat -u '*' 2>/dev/null)" ] && [ $SECONDS -lt $end ]; do sleep 0.5; done
  [ -z "$(timeout 20 qstat -u '*' 2>/dev/null)" ] || { echo "jobs still listed after $STOP_TIMEOUT s:"; qstat -u '*'; }
fi
# 2. execd, 3. its spool, 4. qmaster
stop sge_execd "$(daemon_pid sge_execd)" timeout 20 qconf -ke "$H"
wipe_spool
stop sge_qmaster "$(daemon_pid sge_qmaster)" timeout 20 qconf -km
[ -z "$STATE" ] || rm -f "$STATE/execd.pid" "$STATE/qmaster.pid"
if [ -z "$STATE" ] && { pgrep -x sge_qmaster >/dev/null || pgrep -x sge_execd >/dev/null; }; then
  echo "SGE daemons still running" >&2; exit 1
fi
echo "SGE down"
