#!/usr/bin/env bash
# `npm run bench`: our kernels beside FAISS, in the same run, on the same data.
#   npm run bench              full cases; rewrites the sections of BENCHMARKS.md it measures
#   npm run bench -- --quick   scaled-down cases to check the harness; BENCHMARKS.md untouched
#   npm run bench -- --scale   only the two-level k-means case at the paper's scale (2M x 768 -> 500K,
#                              ~20 min per side; bench/scale.ts); add --quick for 200K -> 16K
# Steps: install Debian's FAISS/NumPy/OpenBLAS if missing, write the data (bench/prepare.ts), time
# FAISS (bench/faiss_ref.py), then run every bench/*.bench.ts in name order.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export BENCH_QUICK=0
scale=0
for arg in "$@"; do
  case "$arg" in
    --quick) BENCH_QUICK=1 ;;
    --scale) scale=1 ;;
    *) echo "bench: unknown option '$arg' (expected --quick, --scale)" >&2; exit 2 ;;
  esac
done

# Debian's python3-faiss links the generic libblas.so.3; without an optimized BLAS installed that
# is the Netlib reference BLAS, far slower than OpenBLAS, which would make the comparison
# meaningless. The OpenMP build of OpenBLAS is the one FAISS documents: it shares FAISS's OpenMP
# threads, where the pthread build's own pool fights them (measured here: 64 vs 107 GFLOP/s).
openblas_openmp=/usr/lib/x86_64-linux-gnu/openblas-openmp
packages=(python3-faiss python3-numpy libopenblas0-openmp)
missing=()
for p in "${packages[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bench: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
fi

BENCH_DIR="$(mktemp -d)"
export BENCH_DIR
# Benches that start FAISS themselves (bench/ivf.bench.ts) put this first on LD_LIBRARY_PATH too.
export BENCH_FAISS_BLAS_DIR="$openblas_openmp"
trap 'rm -rf "$BENCH_DIR"' EXIT

# Debian's python, not a pyenv one: that is where python3-faiss lives. For FAISS alone the
# OpenBLAS variables are unset and the OpenMP OpenBLAS is put first, whichever libblas.so.3 the
# system's alternatives pick (see BENCHMARKS.md).
faiss() {
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE LD_LIBRARY_PATH="$openblas_openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" /usr/bin/python3 "$@"
}

if ((scale)); then
  # Ours runs as the CLI a user runs (dist/cli.js), each side in its own process, one after the other.
  node scripts/build.mjs --quiet
  read -r -a faiss_args < <(node --import tsx bench/scale.ts prepare)
  echo "== FAISS two-level"
  faiss bench/faiss_twolevel.py "${faiss_args[@]}" > "$BENCH_DIR/scale-faiss.json" 2> "$BENCH_DIR/scale-faiss.log" \
    || { tail -20 "$BENCH_DIR/scale-faiss.log" >&2; exit 1; }
  echo "== ours two-level"
  node --import tsx bench/scale.ts run
  exit 0
fi

node --import tsx bench/prepare.ts
# benches that run the CLI as a user does (memory, first-search) run dist/cli.js
node scripts/build.mjs --quiet
faiss bench/faiss_ref.py "$BENCH_DIR" > "$BENCH_DIR/faiss.json"
for f in bench/*.bench.ts; do
  echo "== $f"
  node --import tsx "$f"
done
