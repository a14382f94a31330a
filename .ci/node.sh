#!/usr/bin/env bash
# Prints the directory of a Node binary of the given major version (22, 24, …), installing it from
# the npm registry's `node` package into a cache the first time. npm 11 runs a dependency's install
# script only when the project allows it, hence the allowScripts entry.
set -euo pipefail
major="${1:?usage: .ci/node.sh MAJOR}"
prefix="${XDG_CACHE_HOME:-$HOME/.cache}/broadcast-queued/node$major"
if [ "$major" = 24 ] && [ -n "${BQ_NODE24_DIR:-}" ]; then prefix="$BQ_NODE24_DIR"; fi
if [ ! -x "$prefix/node_modules/.bin/node" ]; then
  mkdir -p "$prefix"
  printf '{"name":"node%s-runtime","private":true,"allowScripts":{"node":true}}\n' "$major" > "$prefix/package.json"
  npm install --prefix "$prefix" --no-audit --no-fund --silent "node@$major" >&2
fi
echo "$prefix/node_modules/.bin"
