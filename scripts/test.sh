#!/usr/bin/env bash
# Runs everything CI runs: installs what is missing, then type-check, lint, build and the whole test suite
# against real PostgreSQL, Redis, ClickHouse and Temporal servers that the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. scripts/node-env.sh
step() { printf '\n== %s\n' "$*"; }
step "Node.js $(node --version)"
step "type-check";  npm run --silent typecheck
step "lint";        npm run --silent lint
step "build";       npm run --silent build
# Two lanes at once, each with servers of its own (vitest.config.ts): the fault files, and everything else.
# Each lane's lines are prefixed with its name; the step fails if either lane does.
step "tests (two lanes: faults and main)"
lane() { npx vitest run --project "$1" --passWithNoTests "${@:2}" 2>&1 | sed -u "s/^/$1 | /"; }
lane faults "$@" & faults=$!
lane main "$@" & main=$!
status=0
wait "$faults" || status=$?
wait "$main" || status=$?
exit "$status"
