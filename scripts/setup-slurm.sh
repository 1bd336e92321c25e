#!/usr/bin/env bash
# A real one-node Slurm cluster for the slurm test tier: slurmctld + slurmd on this machine, with
# munge for authentication. Runs as root (CI does). Installs Debian's slurmctld, slurmd,
# slurm-client and munge when one is missing (apt-get update only then), writes its own
# slurm.conf under the state folder (this host's short name, its CPU count; no cgroups, no
# accounting daemon), starts munged unless one answers already, then the two daemons, and waits
# until the node takes jobs. Idempotent: a cluster already up is left as it is.
#
#   scripts/setup-slurm.sh [dir]      default dir: .cache/slurm (git-ignored)
#   eval "$(scripts/setup-slurm.sh)"  its stdout is `export SLURM_CONF=...` for the clients
#
# scripts/stop-slurm.sh [dir] stops what this started, by the PIDs in its pid files.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir="$(realpath -m "${1:-.cache/slurm}")"
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"
log() { echo "setup-slurm: $*" >&2; }

(( EUID == 0 )) || { log "needs root (slurmd runs jobs as their users; munged as munge)"; exit 1; }

missing=()
for p in slurmctld slurmd slurm-client munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

mkdir -p "$dir/ctld" "$dir/d" "$dir/log"

# munge: Debian's package writes /etc/munge/munge.key at install; munged refuses to run as root.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge /var/log/munge
  chown munge:munge /run/munge /var/log/munge
  runuser -u munge -- /usr/sbin/munged
  touch "$dir/munged-ours"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

host="$(hostname -s)"
cat > "$conf.tmp" <<EOF
ClusterName=unicode2
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.log
ReturnToService=2
MinJobAge=600
NodeName=$host CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
mv "$conf.tmp" "$conf"

alive "$dir/slurmctld.pid" || slurmctld -f "$conf"
alive "$dir/slurmd.pid" || slurmd -f "$conf"

for _ in $(seq 60); do
  state="$(sinfo -h -N -o '%T' 2>/dev/null | head -1)"
  if [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* ]]; then
    printf 'export SLURM_CONF=%q\n' "$conf"
    exit 0
  fi
  sleep 1
done
log "the node did not come up (state '${state:-none}'); see $dir/log/"
exit 1
