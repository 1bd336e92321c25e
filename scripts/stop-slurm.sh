#!/usr/bin/env bash
# Stops the one-node cluster scripts/setup-slurm.sh started: slurmd and slurmctld by the PIDs in
# their pid files, and munged when that script started it. Never by name.
#
#   scripts/stop-slurm.sh [dir]      default dir: .cache/slurm
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir="$(realpath -m "${1:-.cache/slurm}")"

stop() {
  local file="$1" pid
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$file"
}

stop "$dir/slurmd.pid"
stop "$dir/slurmctld.pid"
if [[ -f "$dir/munged-ours" ]]; then
  stop /run/munge/munged.pid
  rm -f "$dir/munged-ours"
fi
exit 0
