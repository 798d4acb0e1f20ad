#!/usr/bin/env bash
# A one-host SLURM cluster from Debian's packages, for `make slurm-check` (root, no systemd).
#   bash scripts/slurm_local.sh start DIR   # installs slurm-wlm and munge if missing, writes DIR/slurm.conf,
#                                           # starts munged, slurmctld and slurmd; prints the SLURM_CONF to export
#   bash scripts/slurm_local.sh stop DIR    # stops the three daemons by the PIDs recorded in DIR
# The partition `debug` holds this host with all its cores; jobs run as root.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?state folder}
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)

stop() {
  for name in slurmd slurmctld munged; do
    f="$dir/$name.pid"
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "slurm_local: slurm-wlm and munge are not installed, and installing them needs root" >&2; exit 2; }
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
mkdir -p "$dir/spool/ctld" "$dir/spool/d" "$dir/log"
cat > "$dir/slurm.conf" <<EOF
ClusterName=hermes3
SlurmctldHost=$host
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
JobRequeue=1
# seconds between SIGTERM and SIGKILL of a cancelled or requeued job (default 30): submitit's jobs ignore
# SIGTERM, so every scancel and requeue of the check would wait that long for the kill
KillWait=5
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

# munge: the key is made at install; the daemon runs as user munge from its own run folder
mkdir -p /run/munge && chown munge:munge /run/munge
if ! pgrep -x munged >/dev/null; then
  su -s /bin/sh munge -c "munged --pid-file=/run/munge/munged.pid" 2>/dev/null || runuser -u munge -- munged
  cp /run/munge/munged.pid "$dir/munged.pid" 2>/dev/null || pgrep -x munged > "$dir/munged.pid"
fi
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break
  sleep 0.2
done
sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)' || { echo "slurm_local: the node did not come up (see $dir/log)" >&2; stop; exit 1; }
echo "export SLURM_CONF=$SLURM_CONF"
