import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import type { ManagedProcess } from './managed-process.js';
import { startPostgres, type PostgresSettings } from './postgres.js';
import { startRedis, type RedisSettings } from './redis.js';
import { startClickHouse, type ClickHouseSettings } from './clickhouse.js';
import { startTemporal, type TemporalSettings } from './temporal.js';

export type { PostgresSettings, RedisSettings, ClickHouseSettings, TemporalSettings };

interface Started<T> {
  settings: T;
  process: ManagedProcess;
}

const SERVER_NAMES = ['postgres', 'redis', 'clickhouse', 'temporal'] as const;

export interface ServerSettings {
  postgres: PostgresSettings;
  redis: RedisSettings;
  clickhouse: ClickHouseSettings;
  temporal: TemporalSettings;
}

export interface LocalServers<K extends keyof ServerSettings = keyof ServerSettings> {
  settings: Pick<ServerSettings, K>;
  /** The temporary directory that holds the servers' data and logs; removed by stop(). */
  dir: string;
  /** Which servers were started here (the others came from ECHODB_TEST_* variables). */
  started: K[];
  /** Stops one server started here, as an outage would (for fault tests); restartServer brings it back. */
  stopServer(name: K): Promise<void>;
  /** Starts a stopped server again on the same port, with the same data and password. */
  restartServer(name: K): Promise<void>;
  /**
   * Has a process group the caller started (the demo's `echodb run`) killed with the servers when this process
   * exits or is killed outright; stopping it cleanly stays the caller's job.
   */
  killAlong(pgid: number): void;
  stop(): Promise<void>;
}

/**
 * The environment variables that point the tests (and the demo) at servers that already run, instead of
 * starting throwaway ones. The PostgreSQL role must be a superuser (event triggers need one).
 */
export const EXTERNAL_SERVER_VARIABLES = {
  postgres: 'ECHODB_TEST_POSTGRES_URL', // postgres://user:password@host:port/database
  redis: 'ECHODB_TEST_REDIS_URL', // redis://:password@host:port
  clickhouse: 'ECHODB_TEST_CLICKHOUSE_URL', // http://user:password@host:port
  temporal: 'ECHODB_TEST_TEMPORAL_ADDRESS', // host:port, namespace from ECHODB_TEST_TEMPORAL_NAMESPACE
} as const;

/**
 * Starts PostgreSQL, Redis, ClickHouse and a Temporal dev server on free loopback ports in one temporary
 * directory, in parallel. Everything is stopped and the directory removed by stop(), by SIGINT/SIGTERM, and
 * (through a small watchdog process) even when this process is killed outright.
 */
export async function startLocalServers<K extends keyof ServerSettings = keyof ServerSettings>(
  options: {
    env?: NodeJS.ProcessEnv;
    only?: readonly K[];
    /** Start Temporal with its Web UI (settings.temporal.uiUrl) instead of headless. */
    temporalUi?: boolean;
    /**
     * Whether SIGINT and SIGTERM kill the servers at once (default). A caller that stops other things first
     * (the demo) passes false and calls stop() itself; the exit handler and the watchdog stay.
     */
    handleSignals?: boolean;
  } = {},
): Promise<LocalServers<K>> {
  const env = options.env ?? process.env;
  const only = options.only ?? (SERVER_NAMES as readonly (keyof ServerSettings)[] as readonly K[]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echodb-servers-'));
  fs.chmodSync(dir, 0o755); // the postgres and clickhouse OS users must reach their subdirectories
  const processes: ManagedProcess[] = [];
  const adopted: number[] = [];
  const byName = new Map<keyof ServerSettings, ManagedProcess>();
  const watchdog = startWatchdog(dir);
  const recordGroup = (process: ManagedProcess) => fs.appendFileSync(path.join(dir, 'pgids'), `${process.pgid}\n`);
  const track = <T>(name: keyof ServerSettings, started: Started<T>): Started<T> => {
    processes.push(started.process);
    byName.set(name, started.process);
    recordGroup(started.process);
    return started;
  };
  const startedHere = (name: keyof ServerSettings): ManagedProcess => {
    const process = byName.get(name);
    if (!process) throw new Error(`${name} was not started here, so it cannot be stopped or restarted`);
    return process;
  };
  // PostgreSQL's fast shutdown; the others stop on SIGTERM.
  const stopSignal = (p: ManagedProcess) => (p.name === 'PostgreSQL' ? 'SIGINT' : 'SIGTERM');

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal).off('exit', onExit);
    killGroups(adopted);
    await Promise.all(processes.map((p) => p.stop(stopSignal(p))));
    fs.rmSync(dir, { recursive: true, force: true });
    watchdog.kill('SIGKILL');
  };
  const onExit = (): void => {
    killGroups(adopted);
    for (const p of processes) p.killNow();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    onExit();
    process.kill(process.pid, signal);
  };
  if (options.handleSignals ?? true) process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  process.once('exit', onExit);

  try {
    const external = externalSettings(env);
    const starters: { [N in keyof ServerSettings]: (dir: string) => Promise<Started<ServerSettings[N]>> } = {
      postgres: startPostgres,
      redis: startRedis,
      clickhouse: startClickHouse,
      temporal: (dir) => startTemporal(dir, { ui: options.temporalUi ?? false }),
    };
    const start = async <N extends keyof ServerSettings>(name: N): Promise<ServerSettings[N]> => {
      const given = external[name];
      if (given) return given;
      // A port found free can be taken before the server binds it (by another server starting, or as the
      // local port of some connection): start again on other ports, in a fresh directory.
      for (let attempt = 1; ; attempt++) {
        try {
          return track(name, await starters[name](path.join(dir, attempt === 1 ? name : `${name}-${attempt}`))).settings;
        } catch (error) {
          if (attempt === 3 || !/address already in use/i.test(String(error))) throw error;
        }
      }
    };
    const entries = await Promise.all(only.map(async (name) => [name, await start(name)] as const));
    const started = only.filter((name) => !external[name]);
    return {
      settings: Object.fromEntries(entries) as Pick<ServerSettings, K>,
      dir,
      started,
      async stopServer(name) {
        const process = startedHere(name);
        await process.stop(stopSignal(process));
      },
      async restartServer(name) {
        const process = startedHere(name);
        await process.restart();
        recordGroup(process);
      },
      killAlong(pgid) {
        adopted.push(pgid);
        fs.appendFileSync(path.join(dir, 'pgids'), `${pgid}\n`);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

function killGroups(pgids: readonly number[]): void {
  for (const pgid of pgids) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function externalSettings(env: NodeJS.ProcessEnv): Partial<ServerSettings> {
  const settings: Partial<ServerSettings> = {};
  const postgresUrl = env[EXTERNAL_SERVER_VARIABLES.postgres];
  if (postgresUrl) {
    const url = new URL(postgresUrl);
    settings.postgres = {
      host: url.hostname,
      port: Number(url.port || 5432),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database: decodeURIComponent(url.pathname.slice(1)) || 'postgres',
    };
  }
  const redisUrl = env[EXTERNAL_SERVER_VARIABLES.redis];
  if (redisUrl) {
    const url = new URL(redisUrl);
    settings.redis = { host: url.hostname, port: Number(url.port || 6379), password: decodeURIComponent(url.password) };
  }
  const clickhouseUrl = env[EXTERNAL_SERVER_VARIABLES.clickhouse];
  if (clickhouseUrl) {
    const url = new URL(clickhouseUrl);
    settings.clickhouse = {
      url: `${url.protocol}//${url.host}`,
      nativePort: Number(env.ECHODB_TEST_CLICKHOUSE_NATIVE_PORT || 9000),
      user: decodeURIComponent(url.username) || 'default',
      password: decodeURIComponent(url.password),
    };
  }
  const temporalAddress = env[EXTERNAL_SERVER_VARIABLES.temporal];
  if (temporalAddress) {
    settings.temporal = { address: temporalAddress, namespace: env.ECHODB_TEST_TEMPORAL_NAMESPACE || 'default' };
  }
  return settings;
}

/**
 * A detached shell that outlives us: when our pid disappears (even by SIGKILL) it kills the server process
 * groups listed in the directory and removes it.
 */
function startWatchdog(dir: string) {
  const script = `
    while kill -0 "$1" 2>/dev/null; do sleep 1; done
    if [ -f "$2/pgids" ]; then while read -r g; do kill -KILL -- "-$g" 2>/dev/null; done < "$2/pgids"; fi
    rm -rf "$2"`;
  const watchdog = spawn('bash', ['-c', script, 'echodb-watchdog', String(process.pid), dir], {
    detached: true,
    stdio: 'ignore',
  });
  watchdog.unref();
  return watchdog;
}
