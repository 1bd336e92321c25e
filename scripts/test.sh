#!/usr/bin/env bash
# `npm test`: prepares the machine, builds, typechecks and runs every test tier with node's own
# test runner, then prints one closing line "N passed, N failed[, N skipped]" built from the
# runner's summaries. Exits non-zero if anything failed.
#
#   npm test                 all tiers: unit fuzz gpu webview e2e slurm
#                            (slurm: a one-node cluster it starts and stops itself; needs root and apt)
#   npm test -- unit gpu     only those tiers
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

all_tiers=(unit fuzz gpu webview e2e slurm)
tiers=("$@")
((${#tiers[@]})) || tiers=("${all_tiers[@]}")
for t in "${tiers[@]}"; do
  [[ " ${all_tiers[*]} " == *" $t "* ]] || { echo "test.sh: unknown tier '$t' (expected: ${all_tiers[*]})" >&2; exit 2; }
done

# Steps before the runner (setup, build, typecheck) that fail are reported and counted as failed
# checks in the closing line, but the tiers still run so one broken step does not hide the rest.
step_failures=0
step() {
  local name="$1"; shift
  echo "== $name"
  if ! "$@"; then
    echo "test.sh: $name FAILED" >&2
    step_failures=$((step_failures + 1))
    return 1
  fi
}

step "system packages" bash scripts/setup-system.sh
if [[ ! -d node_modules ]]; then
  step "node dependencies" bash -c 'npm ci --no-audit --no-fund || npm install --no-audit --no-fund'
fi
step "build" node scripts/build.mjs
step "typecheck" npx tsc -p . --noEmit
if [[ " ${tiers[*]} " == *" gpu "* ]]; then
  # onnxruntime's WebGPU provider needs a Vulkan adapter: Mesa lavapipe in a folder (~12 MB, once).
  step "lavapipe" bash scripts/setup-lavapipe.sh
fi
if [[ " ${tiers[*]} " == *" e2e "* || " ${tiers[*]} " == *" slurm "* ]]; then
  # The slurm tier also drives "Run on Slurm" in code-server. Installed here, outside any test timeout: ~3 min the first time, seconds once cached.
  step "code-server" bash -c 'bash scripts/setup-code-server.sh >/dev/null'
fi

logs_dir="$(mktemp -d)"
trap 'rm -rf "$logs_dir"' EXIT
runner_failed=0

run_tier() {
  local tier="$1"
  local files=()
  mapfile -t files < <(find "test/$tier" -name '*.test.ts' -type f 2>/dev/null | sort)
  if ((${#files[@]} == 0)); then
    echo "== tier $tier: no test files"
    return
  fi
  echo "== tier $tier: ${#files[@]} file(s)"
  local env=()
  # The gpu tier runs on Dawn's software (SwiftShader/Mesa) adapter, which needs no display.
  # lavapipe (scripts/setup-lavapipe.sh) gives both Dawns -- the webgpu package's and onnxruntime's
  # -- a Vulkan software adapter.
  if [[ "$tier" == gpu ]]; then
    env=(EGL_PLATFORM=surfaceless UNICODE2_ALLOW_SOFTWARE_GPU=1)
    [[ -f .cache/lavapipe/env ]] && mapfile -t -O "${#env[@]}" env < .cache/lavapipe/env
  fi
  # spec for people on stdout; TAP to a file for counting, so test output cannot be miscounted.
  env "${env[@]}" node --import tsx --test --test-concurrency=1 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$logs_dir/$tier.tap" \
    "${files[@]}" </dev/null || runner_failed=1
}

for t in "${tiers[@]}"; do run_tier "$t"; done

# The TAP reporter ends with "# pass N", "# fail N", "# cancelled N", "# skipped N", "# todo N".
summary_count() {
  local key="$1" total=0 n f
  for f in "$logs_dir"/*.tap; do
    [[ -f "$f" ]] || continue
    n="$(grep -E "^# $key [0-9]+$" "$f" | tail -1 | awk '{print $3}')"
    total=$((total + ${n:-0}))
  done
  echo "$total"
}
passed="$(summary_count pass)"
failed=$(($(summary_count fail) + $(summary_count cancelled) + step_failures))
skipped=$(($(summary_count skipped) + $(summary_count todo)))

# A runner that exited non-zero without reporting a failure (crash, bad flag) still fails the run.
if ((runner_failed && failed == 0)); then
  echo "test.sh: the test runner exited with an error but reported no failed test" >&2
  failed=1
fi

closing="$passed passed, $failed failed"
((skipped)) && closing+=", $skipped skipped"
echo "$closing"
((failed == 0))
