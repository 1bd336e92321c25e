#!/usr/bin/env bash
# Installs the Debian packages the test tiers need. Idempotent and quick when everything is
# already there: the package index is refreshed only when something is missing.
#   chromium                 the browser Playwright drives for the webview and end-to-end tiers
#   libegl-mesa0 libgles2 libgl1-mesa-dri   Mesa's software renderer behind Dawn's fallback adapter (gpu tier)
#   libkrb5-dev g++ make python3            node-gyp toolchain for code-server's native modules (e2e tier)
#   python3-numpy            unit tests cross-check .npy/.safetensors files against NumPy
#   python3-pil              unit tests check the model families' preprocessing against a NumPy + PIL reference
#   unzip                    the packaging test lists the .vsix contents
set -euo pipefail

packages=(chromium libegl-mesa0 libgles2 libgl1-mesa-dri libkrb5-dev g++ make python3 python3-numpy python3-pil unzip)

missing=()
for p in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
  echo "setup-system: missing Debian packages: ${missing[*]} (run as root: apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "setup-system: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >&2
