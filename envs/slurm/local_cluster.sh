#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for testing the slurm executor.
#
#   envs/slurm/local_cluster.sh install       install slurm-wlm + munge (Debian packages) if missing
#   envs/slurm/local_cluster.sh start [DIR]   write a config for this host (its CPUs and memory, no
#                                              GPUs, no cgroups), start munged, slurmctld, slurmd;
#                                              wait until idle. Installs nothing: without the
#                                              packages it fails, naming the install verb
#   envs/slurm/local_cluster.sh stop [DIR]    stop the daemons by PID
#   envs/slurm/local_cluster.sh env [DIR]     print `export SLURM_CONF=...` for this cluster
#
# Installing is a separate verb because the tests start clusters and a test must not change the
# machine: .ci/run installs, the test fixture only starts. State, logs, the munge key and socket
# live under DIR (default /tmp/fgbench-slurm). Commands find the cluster through
# SLURM_CONF=DIR/slurm.conf. Must run as root (the daemons do).
set -euo pipefail
cmd=${1:-}
D=${2:-/tmp/fgbench-slurm}

installed() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    && command -v sbatch >/dev/null
}

install() {
  if ! installed; then
    echo "installing slurm-wlm and munge (Debian packages)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
  fi
}

start() {
  if ! installed; then
    echo "SLURM is not installed here (slurmctld, slurmd, munged, sbatch); install it first with" \
         "'bash envs/slurm/local_cluster.sh install' (root, Debian's slurm-wlm and munge)" >&2
    return 1
  fi
  stop >/dev/null 2>&1 || true
  local host mem cpus t0
  t0=$(date +%s%N)
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 1024 ))
  rm -rf "$D/state" "$D/spool"  # a fresh cluster: no jobs left from an earlier start
  mkdir -p "$D"/{state,spool,log,munge}
  chmod 700 "$D/munge"
  if [[ ! -s $D/munge/munge.key ]]; then
    dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 2>/dev/null
    chmod 400 "$D/munge/munge.key"
  fi
  munged --key-file="$D/munge/munge.key" --socket="$D/munge/munge.sock" --pid-file="$D/munge/munged.pid" \
         --log-file="$D/munge/munged.log" --seed-file="$D/munge/seed" --force
  cat > "$D/slurm.conf" <<CONF
ClusterName=fgbench-local
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
# No cgroup support is assumed: track processes by PID, no task binding, no accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=1
MessageTimeout=20
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$D/slurm.conf
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF"
  for _ in $(seq 1 120); do
    if sinfo -h -o %T 2>/dev/null | grep -q idle; then
      echo "local SLURM cluster up in $(( ($(date +%s%N) - t0) / 1000000 )) ms ($cpus CPUs, $mem MB);" \
           "export SLURM_CONF=$SLURM_CONF" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "SLURM did not come up; see $D/log" >&2
  return 1
}

stop() {
  local f pid
  for f in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munge/munged.pid"; do
    if [[ -s $f ]]; then
      pid=$(cat "$f")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$f"
    fi
  done
}

case "$cmd" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  env) echo "export SLURM_CONF=$D/slurm.conf" ;;
  *) echo "usage: $0 install | start|stop|env [DIR]" >&2; exit 2 ;;
esac
