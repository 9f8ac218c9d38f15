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
# The vitest projects of vitest.config.ts. First `unit` (no server, seconds): a broken unit test fails the run
# before any server starts. Then three lanes at once, each with servers of its own: `workflows` (a Temporal dev
# server), `integration-faults` (the fault matrix) and `integration` (every other test file). Each
# lane's lines are prefixed with its name; the step fails if any lane does. Extra arguments go to every project.
step "unit tests"
npx vitest run --project unit --passWithNoTests "$@"
step "tests (three lanes: workflows, integration-faults, integration)"
lane() { npx vitest run --project "$1" --passWithNoTests "${@:2}" 2>&1 | sed -u "s/^/$1 | /"; }
lane workflows "$@" & workflows=$!
lane integration-faults "$@" & faults=$!
lane integration "$@" & integration=$!
status=0
wait "$workflows" || status=$?
wait "$faults" || status=$?
wait "$integration" || status=$?
exit "$status"
