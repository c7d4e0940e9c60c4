#!/bin/bash
# sge-up.sh - single-host Son of Grid Engine 8.1.9 (Debian 12 gridengine-*), as root, no systemd.
# Used by the sge_cluster fixture (tests/providers/conftest.py); adapted from shared/lab/sge-up.sh.
# Idempotent: installs the Debian packages when missing, (re)starts only daemons that are down,
# and re-applies the configuration.            SLOTS=4 STATE=/tmp/x bash sge-up.sh
# STATE (optional): a directory where the pids of the daemons this run started are recorded, so that
#   sge-down.sh (same STATE) stops exactly those, also when this script fails half-way.
# No job of an earlier run survives a start: every job is deleted once qmaster answers, and the
#   execd spool of a dead execd (jobs it would re-attach to, their shepherds) is wiped.
# Load-insensitive: a busy host must not put the queue in alarm (load_thresholds NONE, no load
#   adjustments), and every wait polls with a deadline of READY_TIMEOUT s (default 180).
# NOTE: gridengine-client conflicts with slurm-wlm-torque (both ship /usr/bin/qsub): installing it
#       removes that package; Slurm's PBS wrappers live in /opt/slurm-torque instead (pbs-wrappers.sh).
set -euo pipefail
SLOTS=${SLOTS:-4}
STATE=${STATE:-}
READY_TIMEOUT=${READY_TIMEOUT:-180}
QUEUE_TIMEOUT=${QUEUE_TIMEOUT:-$READY_TIMEOUT}   # the last wait: all.q ready (0: fail there, for tests)
H=$(hostname)
HERE=$(cd "$(dirname "$0")" && pwd)
[ -z "$STATE" ] || mkdir -p "$STATE"
record(){ # name: the pid of the daemon just started into STATE. It forks into the background:
  # right after the start the newest process of that name may still be the parent, about to exit
  # (a loaded machine left a qmaster running that way: the pid recorded was the parent's), so it
  # is recorded again once the daemon answers; sge-down.sh also finds this run's daemons by
  # CF_TEST_RUN when the recorded pid is gone
  [ -n "$STATE" ] || return 0
  local p="" end=$((SECONDS + 30))
  until p=$(pgrep -x -n "$1") || [ $SECONDS -ge $end ]; do sleep 0.1; done
  [ -n "$p" ] && echo "$p" > "$STATE/${1#sge_}.pid"
  return 0
}
t0=$(date +%s.%N)
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
WORK=$(mktemp -d /tmp/sge-up.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# 0. the host name must resolve; SGE compares the reverse lookup of the client IP with it
getent hosts "$H" >/dev/null || echo "127.0.0.1 $H" >> /etc/hosts

# 1. packages, non-interactively (debconf preseed; the postinst then runs init_cluster itself)
missing=0
for b in /usr/sbin/sge_qmaster /usr/sbin/sge_execd /usr/bin/qconf /usr/bin/qacct; do [ -x "$b" ] || missing=1; done
# /usr/bin/qsub may belong to slurm-wlm-torque: it must be SGE's
dpkg-query -W -f='${Status}' gridengine-client 2>/dev/null | grep -q 'ok installed' || missing=1
if [ "$missing" = 1 ]; then
  rm_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then   # no daemon may start from a postinst here
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; rm_policy=1
  fi
  for p in gridengine-common gridengine-client gridengine-master gridengine-exec; do
    printf '%s shared/gridengineconfig boolean true\n%s shared/gridenginecell string default\n%s shared/gridenginemaster string %s\n' \
      "$p" "$p" "$p" "$H"
  done | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends gridengine-master gridengine-exec gridengine-client >/dev/null
  [ "$rm_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# 2. "$H" resolves to 127.0.0.1, whose reverse lookup is "localhost": SGE would refuse every client
echo "$H localhost" > "$SGE_ROOT/$SGE_CELL/common/host_aliases"

# 3. qmaster (daemonizes; pid in /var/spool/gridengine/qmaster/qmaster.pid)
started_qmaster=""
if ! pgrep -x sge_qmaster >/dev/null; then
  /usr/sbin/sge_qmaster
  record sge_qmaster
  started_qmaster=1
fi
end=$((SECONDS + READY_TIMEOUT))
until qconf -sh >/dev/null 2>&1; do
  [ $SECONDS -lt $end ] || { echo "sge_qmaster does not answer after $READY_TIMEOUT s" >&2; qconf -sh; exit 1; }
  sleep 0.2
done
[ -z "$started_qmaster" ] || record sge_qmaster   # the daemon itself, now that it answers

# 3b. jobs of an earlier run come back from the spool at a qmaster start: delete them all (forced:
#     their execd may be gone) and wait until qstat lists none
qdel -f -u '*' >/dev/null 2>&1 || true
end=$((SECONDS + READY_TIMEOUT))
until [ -z "$(qstat -u '*' 2>/dev/null)" ]; do
  [ $SECONDS -lt $end ] || { echo "old jobs are still listed after $READY_TIMEOUT s:" >&2; qstat -u '*' >&2; exit 1; }
  sleep 0.5
done

# 4. configuration (non-interactive: -A*/-M* from files, or EDITOR=<script> for qconf -aq/-mconf)
cat > "$WORK/ed-conf.sh" <<'EOF'
#!/bin/sh
sed -i -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' -e 's/flush_time=00:00:15/flush_time=00:00:01/' "$1"
EOF
cat > "$WORK/ed-queue.sh" <<EOF
#!/bin/sh
sed -i -e 's/^qname .*/qname all.q/' -e 's/^hostlist .*/hostlist $H/' -e 's/^slots .*/slots $SLOTS/' \
       -e 's/^pe_list .*/pe_list smp/' -e 's#^shell .*#shell /bin/bash#' \
       -e 's/^shell_start_mode .*/shell_start_mode unix_behavior/' -e 's/^load_thresholds .*/load_thresholds NONE/' "\$1"
EOF
cat > "$WORK/exechost.txt" <<EOF
hostname              $H
load_scaling          NONE
complex_values        NONE
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE
EOF
cat > "$WORK/pe-smp.txt" <<'EOF'
pe_name            smp
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
chmod +x "$WORK"/*.sh
EDITOR=$WORK/ed-conf.sh qconf -mconf >/dev/null 2>&1 || true     # root jobs (default min uid/gid is 1000)
qconf -as "$H" >/dev/null 2>&1 || true                             # submit host
qconf -sel 2>/dev/null | grep -qx "$H" || qconf -Ae "$WORK/exechost.txt" >/dev/null
qconf -spl 2>/dev/null | grep -qx smp || qconf -Ap "$WORK/pe-smp.txt" >/dev/null
qconf -sql 2>/dev/null | grep -qx all.q || EDITOR=$WORK/ed-queue.sh qconf -aq >/dev/null
# a busy host (load above 1.75 per core) would put the queue in alarm ('a') and start nothing:
# no load threshold (-rattr: -mattr refuses NONE), also on a queue an earlier version created
qconf -rattr queue load_thresholds NONE all.q >/dev/null
qconf -ssconf > "$WORK/sconf.txt"           # schedule every second, not every 15 s; no load adjustments
sed -i -e 's/^schedule_interval .*/schedule_interval 0:0:1/' -e 's/^flush_submit_sec .*/flush_submit_sec 1/' \
       -e 's/^flush_finish_sec .*/flush_finish_sec 1/' -e 's/^job_load_adjustments .*/job_load_adjustments NONE/' \
       -e 's/^load_adjustment_decay_time .*/load_adjustment_decay_time 0:0:0/' "$WORK/sconf.txt"
qconf -Msconf "$WORK/sconf.txt" >/dev/null 2>&1 || true
qconf -sq all.q | grep -q '^load_thresholds *NONE' || { echo "all.q keeps a load threshold" >&2; exit 1; }

# 5. execd (after the configuration, else the first jobs see min_gid=1000 and the queue goes to E).
#    A fresh execd would re-attach to the jobs in its spool: end those (shepherds and job process
#    groups, by the pids SGE wrote there) and wipe the spool first.
if ! pgrep -x sge_execd >/dev/null; then
  bash "$HERE/sge-down.sh" --spool-only
  /usr/sbin/sge_execd
  record sge_execd
  started_execd=1
fi
st=""
end=$((SECONDS + QUEUE_TIMEOUT))
while [ $SECONDS -lt $end ]; do
  st=$(qstat -f -q "all.q@$H" 2>/dev/null | awk -v q="all.q@$H" '$1==q{print ($6==""?"ok":$6)}')
  [ "$st" = ok ] && break
  qmod -c all.q >/dev/null 2>&1 || true
  sleep 0.5
done
qmod -c all.q >/dev/null 2>&1 || true
[ -z "${started_execd:-}" ] || record sge_execd     # the daemon itself, now that its queue is up
qstat -f
[ "$st" = ok ] || { echo "queue all.q@$H not ready after $QUEUE_TIMEOUT s (state '$st')" >&2; exit 1; }
echo "SGE up in $(awk "BEGIN{print $(date +%s.%N)-$t0}") s"
