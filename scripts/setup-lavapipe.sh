#!/usr/bin/env bash
# A Vulkan software adapter for the gpu test tier: Mesa's lavapipe (Mesa >= 25; Debian 12's own
# Mesa 22 lavapipe lacks features Dawn requires) and the Vulkan loader, unpacked into a folder --
# nothing is installed. onnxruntime-node's WebGPU execution provider reaches the GPU only through
# Vulkan, so without this the gpu tier could not run it on a machine without a GPU.
#
#   scripts/setup-lavapipe.sh [dir]      default dir: .cache/lavapipe (git-ignored)
#
# On Debian 12 (bookworm) the packages come from bookworm-backports, on the mirror the machine's
# own sources list names, through a private sources list (apt-get update/download with
# Dir::Etc::SourceList, Dir::State::Lists and Dir::Cache pointing into the folder); on later
# releases from the machine's own sources. Writes <dir>/env: the VK_ICD_FILENAMES and
# LD_LIBRARY_PATH lines that select lavapipe. Returns at once when <dir>/env exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir="$(realpath -m "${1:-.cache/lavapipe}")"
[[ -f "$dir/env" ]] && exit 0

work="$dir/.apt"
rm -rf "$work" "$dir/root"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$dir/root"
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
opts=(-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1)
packages=(libvulkan1 mesa-vulkan-drivers libdrm2 libdrm-amdgpu1)
if [[ "$codename" == bookworm ]]; then
  # The mirror this machine already uses for Debian (first non-security http(s) URI).
  mirror="$(grep -rhE '^[[:space:]]*(URIs:|deb[[:space:]])' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
            | grep -oE 'https?://[^ ]+' | grep -i debian | grep -v -- '-security' | head -1 || true)"
  [[ -n "$mirror" ]] || { echo "setup-lavapipe: no Debian mirror in /etc/apt/sources.list(.d)" >&2; exit 1; }
  printf 'deb %s bookworm main\ndeb %s bookworm-backports main\n' "$mirror" "$mirror" > "$work/sources.list"
  opts+=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null)
  packages=(libvulkan1 mesa-vulkan-drivers/bookworm-backports libdrm2/bookworm-backports libdrm-amdgpu1/bookworm-backports)
fi
echo "setup-lavapipe: fetching ${packages[*]} into $dir" >&2
apt-get "${opts[@]}" update -qq >&2
# As root apt warns that its sandbox user cannot write into the folder and downloads anyway.
(cd "$work/debs" && apt-get "${opts[@]}" download "${packages[@]}" 2>&1 | grep -v 'unsandboxed' >&2 || true)
debs=("$work/debs"/*.deb)
[[ -e "${debs[0]}" ]] || { echo "setup-lavapipe: nothing was downloaded" >&2; exit 1; }
for deb in "${debs[@]}"; do dpkg-deb -x "$deb" "$dir/root"; done

lib="$dir/root/usr/lib/$(uname -m)-linux-gnu"
icd="$dir/root/usr/share/vulkan/icd.d/lvp_icd.json"
[[ -f "$lib/libvulkan_lvp.so" && -f "$icd" ]] || { echo "setup-lavapipe: the packages hold no lavapipe driver" >&2; exit 1; }
# The driver's manifest names the library relative to the system paths; point it into the folder.
sed -E "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$lib/libvulkan_lvp.so\"#" "$icd" > "$dir/lvp_icd.json"
rm -rf "$work"
printf 'VK_ICD_FILENAMES=%s\nLD_LIBRARY_PATH=%s\n' "$dir/lvp_icd.json" "$lib" > "$dir/env.tmp"
mv "$dir/env.tmp" "$dir/env"
echo "setup-lavapipe: ready ($dir/env)" >&2
