#!/usr/bin/env bash
# Runs everything CI runs: installs what is missing, then type-check, lint, build and the whole test suite
# against real PostgreSQL, Redis, ClickHouse and Temporal servers that the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
step() { printf '\n== %s\n' "$*"; }
step "type-check";  npm run --silent typecheck
step "lint";        npm run --silent lint
step "build";       npm run --silent build
step "tests";       npx vitest run "$@"
