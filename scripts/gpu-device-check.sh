#!/usr/bin/env bash
# The GPU checks on a device machine (NVIDIA GPU, Vulkan driver; no npm, maybe no node, no network):
# the GPU tests and the WebGPU bench on the hardware adapter, results under $OUT.
# --tests-only: the GPU tests and the CLI check, no benchmarks (a re-check after a change).
#
# Needs, from the working tree copy: .device/gpu-tests.js, .device/webgpu-bench.js (and
# optionally .device/gpu-cli-test.js + dist/cli.js), built here by scripts/build-device-bundle.mjs;
# a node binary and the native packages (webgpu, onnxruntime-node, sharp) from either
#   NODE_BIN / NODE_PATH in the environment, or
#   .device/pack.tar.xz (scripts/device-pack.sh: bin/node + node_modules/), unpacked to a temp dir.
set -uo pipefail
cd "$(dirname "$0")/.."
for f in .gl/*.deb; do [[ -e "$f" ]] && dpkg -x "$f" /; done; ldconfig 2>/dev/null
[[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json

OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
if [[ -z "${NODE_BIN:-}" && -f .device/pack.tar.xz ]]; then
  pack="$(mktemp -d)"
  tar -C "$pack" -xJf .device/pack.tar.xz
  NODE_BIN="$pack/bin/node"
  export NODE_PATH="${NODE_PATH:+$NODE_PATH:}$pack/node_modules"
fi
NODE_BIN="${NODE_BIN:-node}"
export NODE_PATH="${NODE_PATH:-}"
command -v "$NODE_BIN" >/dev/null || { echo "gpu-device-check: no node ($NODE_BIN); set NODE_BIN" | tee "$OUT/summary.txt"; exit 2; }
[[ -f .device/gpu-tests.js ]] || { echo "gpu-device-check: .device/gpu-tests.js missing; run node scripts/build-device-bundle.mjs" | tee "$OUT/summary.txt"; exit 2; }

{
  echo "node $("$NODE_BIN" --version), NODE_PATH=$NODE_PATH"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
} | tee "$OUT/environment.txt"

# Hardware only: no software adapter may stand in for the GPU here.
export UNICODE2_ALLOW_SOFTWARE_GPU=0 UNICODE2_REQUIRE_HARDWARE_GPU=1
status=0
run() { # name timeout command...
  local name="$1" limit="$2"; shift 2
  echo "== $name"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc" | tee -a "$OUT/exit-codes.txt"
  ((rc == 0)) || status=1
}

run gpu-tests 300 "$NODE_BIN" --test-reporter=tap .device/gpu-tests.js
if [[ -f .device/gpu-cli-test.js && -f dist/cli.js ]]; then
  run gpu-cli-test 300 "$NODE_BIN" --test-reporter=tap .device/gpu-cli-test.js
else
  echo "gpu-cli-test: skipped (needs .device/gpu-cli-test.js and dist/cli.js)" | tee -a "$OUT/exit-codes.txt"
fi
if [[ "${1:-}" != "--tests-only" ]]; then
  run webgpu-bench 420 "$NODE_BIN" .device/webgpu-bench.js
  # BENCHMARKS.md here is a copy that does not come back: the figures travel in the logs.
  BENCH_NO_WRITE=1 run tokenize-bench 300 "$NODE_BIN" .device/tokenize-bench.js
  BENCH_NO_WRITE=1 run generation-bench 300 "$NODE_BIN" .device/generation-bench.js
fi

{
  echo "==== summary"
  cat "$OUT/environment.txt"
  for log in gpu-tests gpu-cli-test; do
    [[ -f "$OUT/$log.log" ]] || continue
    grep -E '^# (tests|pass|fail|cancelled) ' "$OUT/$log.log" | tr '\n' ' ' | sed "s/^/$log: /"; echo
    grep -E '^not ok' "$OUT/$log.log" | head -20
  done
  grep -vE '^(Warning|    at |$)' "$OUT/webgpu-bench.log" 2>/dev/null | grep -v '^BENCH_JSON' | tail -15
  grep '^BENCH_JSON' "$OUT/webgpu-bench.log" > "$OUT/webgpu-bench.json" 2>/dev/null
  grep -E 'images/s|no hardware' "$OUT/tokenize-bench.log" 2>/dev/null
  grep -E 'steps/s|no hardware' "$OUT/generation-bench.log" 2>/dev/null
  cat "$OUT/exit-codes.txt"
} | tee "$OUT/summary.txt"
exit $status
