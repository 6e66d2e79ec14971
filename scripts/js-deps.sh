#!/usr/bin/env bash
# Installs the JavaScript packages the benchmarks compare against (bench/js/package.json: the
# reference MJML compiler) into bench/js/node_modules, from the npm registry, pinned by the lock
# file. Without npm it says so and exits 0: bench/render.py then skips the comparison.
set -euo pipefail
cd "$(dirname "$0")/../bench/js"
if ! command -v npm >/dev/null 2>&1; then
  echo "js-deps: npm not found; install Node.js to compare against the JavaScript MJML" >&2
  exit 0
fi
if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
