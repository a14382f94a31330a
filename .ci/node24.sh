#!/usr/bin/env bash
# Prints the directory of a Node 24 binary, installing it from the npm registry's `node` package
# into a cache the first time. npm 11 runs a dependency's install script only when the project
# allows it, hence the allowScripts entry.
set -euo pipefail
prefix="${BQ_NODE24_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/broadcast-queued/node24}"
if [ ! -x "$prefix/node_modules/.bin/node" ]; then
  mkdir -p "$prefix"
  printf '{"name":"node24-runtime","private":true,"allowScripts":{"node":true}}\n' > "$prefix/package.json"
  npm install --prefix "$prefix" --no-audit --no-fund --silent node@24 >&2
fi
echo "$prefix/node_modules/.bin"
