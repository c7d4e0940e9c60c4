#!/bin/bash
# pbs-wrappers.sh - Slurm's PBS/Torque wrappers (qsub/qstat/qdel/...) from Debian's slurm-wlm-torque,
# unpacked into $PREFIX (default /opt/slurm-torque) WITHOUT installing the package, so that they can
# coexist with gridengine-client, which owns /usr/bin/qsub. Adapted from shared/lab/pbs-wrappers-opt.sh.
# Used by the pbs_commands fixture (tests/providers/conftest.py). Idempotent; run as root.
#   bash pbs-wrappers.sh   then:   PATH=/opt/slurm-torque/usr/bin:$PATH SLURM_CONF=... qsub job.pbs
set -euo pipefail
PREFIX=${PREFIX:-/opt/slurm-torque}
BIN=$PREFIX/usr/bin
export DEBIAN_FRONTEND=noninteractive
need=()
for p in libslurm-perl libslurmdb-perl libswitch-perl slurm-client; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
updated=0
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq; updated=1
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -x "$BIN/qsub" ] || [ ! -x "$BIN/qstat" ] || [ ! -x "$BIN/qdel" ]; then
  d=$(mktemp -d)
  trap 'rm -rf "$d"' EXIT
  if ! (cd "$d" && apt-get download -qq slurm-wlm-torque 2>/dev/null); then
    [ "$updated" = 1 ] || apt-get update -qq
    (cd "$d" && apt-get download -qq slurm-wlm-torque)
  fi
  mkdir -p "$PREFIX"
  dpkg -x "$d"/slurm-wlm-torque_*.deb "$PREFIX"
fi
# the wrappers run "$FindBin::Bin/sbatch" etc., i.e. the Slurm commands next to themselves
for b in sbatch salloc srun scancel squeue scontrol sinfo; do ln -sfn "/usr/bin/$b" "$BIN/$b"; done
perl -MSwitch -e 1 || { echo "Perl module Switch missing (libswitch-perl)" >&2; exit 1; }
perl -MSlurmdb -e 1 || { echo "Perl module Slurmdb missing (libslurmdb-perl): qstat needs it" >&2; exit 1; }
ls "$BIN"
