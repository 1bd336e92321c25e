#!/usr/bin/env bash
# Packs what the GPU checks need on a device machine that has no Node and no network:
# the node binary, the linux-x64 native packages (Dawn, onnxruntime, sharp) and the bundled
# GPU tests and benchmarks, into .device/ (carried by the device tool; not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/build.mjs --quiet
node scripts/build-device-bundle.mjs
rm -rf .device/pack && mkdir -p .device/pack/node_modules .device/pack/bin
cp "$(readlink -f "$(command -v node)")" .device/pack/bin/node
copy_pkg() { mkdir -p ".device/pack/node_modules/$(dirname "$1")"; cp -r "node_modules/$1" ".device/pack/node_modules/$1"; }
for p in webgpu debug ms onnxruntime-node onnxruntime-common sharp @img/colour @img/sharp-linux-x64 \
         @img/sharp-libvips-linux-x64 detect-libc semver; do copy_pkg "$p"; done
# Other platforms' binaries are dead weight under the 64 MiB carry limit.
rm -rf .device/pack/node_modules/webgpu/dist/{darwin-universal,linux-arm64,win32-arm64,win32-x64}
find .device/pack/node_modules/onnxruntime-node/bin -mindepth 3 -maxdepth 3 ! -path '*linux/x64' -exec rm -rf {} +
rm -rf .device/pack/node_modules/onnxruntime-node/bin/napi-v6/{darwin,win32}
tar -C .device/pack -cf - . | xz -T0 -6 > .device/pack.tar.xz
rm -rf .device/pack
ls -la .device
