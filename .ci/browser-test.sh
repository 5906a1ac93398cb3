#!/usr/bin/env bash
# Browser tests of the dashboard and the API docs page: Debian's Chromium (installed with apt-get when missing) driven
# by playwright-core (pinned in tests/browser/package-lock.json, installed with `npm ci` from a
# cache under ~/.cache/bzapper-ci) against the debug gateway on the simulated network. Writes
# docs/screenshots/dashboard-{desktop,phone}.png and api-docs.png.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "the browser test needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))"
  exit 1
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/bzapper-ci/npm"
(cd tests/browser && npm ci --cache "$cache" --prefer-offline --no-audit --no-fund --loglevel=error)

cargo build --quiet --bin bzapper
node tests/browser/dashboard.mjs
node tests/browser/docs.mjs
