/**
 * The soak: a bounded run of random DDL (CREATE TABLE, CREATE TABLE AS SELECT, whose tables have no primary key,
 * DROP TABLE, ALTER TABLE RENAME, ALTER TABLE SET SCHEMA into another watched schema, ALTER TABLE ADD PRIMARY KEY on a
 * table without one) and INSERTs across several watched schemas, with faults injected at random (PeerDB 503s, random PeerDB errors,
 * PeerDB latency, SIGKILL or SIGTERM of one replica followed by its restart), against two replicas that each run
 * `echodb run --roles worker,listener` and share a Redis lease. Then the end-state check of end-state.ts over all
 * the schemas. Used by test/soak.test.ts (one minute) and bench/soak.ts (`npm run soak`, ten minutes).
 *
 * Not tied to vitest: the servers are passed in. A seed drives two PRNG streams, one for the statements and one
 * for the faults, so that a run repeats the same statements and the same faults in the same order; only their
 * timing relative to each other (and the double's own coin for errorRate) differs from run to run.
 */
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { mirrorWorkflowId } from '../../lib/workflow-safe/workflow-ids.js';
import { startLocalServers, type RedisSettings, type ServerSettings } from '../servers/index.js';
import { redisLeaseHolder } from '../../listener/redis-lease.js';
import { startEchoProcess, type EchoProcess } from './echo-process.js';
import { startEchoStack, type EchoStack } from './echo-stack.js';
import type { RequestLogEntry } from '../peerdb-double/index.js';
import { convergence, duplicatedRequests, type MirrorEditBody } from './end-state.js';
import { FAST_ELECTION } from './fast-election.js';
import { saveHistory } from './histories.js';

export const STATEMENT_KINDS = ['create', 'ctas', 'drop', 'rename', 'move', 'key', 'insert'] as const;
export type StatementKind = (typeof STATEMENT_KINDS)[number];
export const FAULT_KINDS = ['peerdb-503', 'peerdb-errors', 'peerdb-latency', 'sigkill', 'sigterm'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

const ROLES = ['worker', 'listener'];

export interface SoakOptions {
  /** PostgreSQL, ClickHouse and Temporal (a LocalServers' settings, or vitest's inject('servers')). */
  servers: ServerSettings;
  /**
   * The Redis of the shared lease. The lease key is a fixed name, so it must be a Redis no other run uses at the
   * same time: when absent, the soak starts one of its own.
   */
  redis?: RedisSettings;
  /** How long statements and faults go on; then the soak waits for convergence. */
  durationMs: number;
  seed: number;
  /** Watched schemas (all in SYNC_SCHEMA), at least 3 (default 3). */
  schemas?: number;
  /** How long to wait for the end state once the load and the faults are over (default 120 s). */
  convergeTimeoutMs?: number;
  /** At most this many tables exist at once across the schemas; past it the load only drops, renames and inserts (default 40). */
  maxLiveTables?: number;
  /**
   * A directory to write the run's record into, for diagnosis: each replica's full output, the statements with
   * their times, the double's request log, the outbox and echodb.mirror_operations, the faults, and the
   * Temporal history of every mirror workflow run (histories/, replayable with `echodb replay --file`).
   */
  artifactsDir?: string;
  /** Progress lines (default console.log). */
  log?: (line: string) => void;
}

export interface FaultRecord {
  kind: FaultKind;
  /** Seconds after the load started. */
  atSeconds: number;
  /** How long the fault lasted (for a replica: from the signal until it was running again). */
  seconds: number;
  detail: string;
}

export interface SoakSummary {
  seed: number;
  schemas: string[];
  loadSeconds: number;
  statements: Record<StatementKind, number>;
  /** Tables created (CREATE TABLE and CREATE TABLE AS) and dropped (a DROP may name two). */
  tablesCreated: number;
  tablesDropped: number;
  /** Statements that failed: EchoDB must never break the user's DDL, so this should stay empty. */
  statementErrors: string[];
  faults: Record<FaultKind, number>;
  faultLog: FaultRecord[];
  /** "is leader" lines of all replica processes: the first election plus every takeover. */
  leaderElections: number;
  /** Outbox rows handled, by the WORKER_ID of the replica that handled them. */
  handledBy: Record<string, number>;
  /** From the end of the load and the faults until the end state held; null when it never did. */
  secondsToConverge: number | null;
  /** What the end-state check found wrong (with problems of the run itself, e.g. a replica that did not restart). */
  problems: string[];
  peerdbRequests: { total: number; byPath: Record<string, number>; byStatus: Record<string, number> };
  /** At the end: tables of the watched schemas, those EchoDB left out with a reason, and the double's mirrors. */
  finalTables: number;
  unmirroredTables: number;
  mirrors: { name: string; status: string; tables: number; error?: string }[];
  /** echodb.mirror_operations by `operation result`. */
  mirrorOperations: Record<string, number>;
  /** Reconcile workflows the listeners started (one each time a replica becomes leader). */
  reconcileRuns: number;
  /** For each mirror a problem names: its create, state-change and drop requests, with the fault active then. */
  requestHistory: Record<string, string[]>;
  /** Mirror operations EchoDB recorded as failed (echodb.mirror_operations), the last 20. */
  failedOperations: string[];
  totalSeconds: number;
}

/** mulberry32: a small seeded PRNG, [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Dice {
  constructor(readonly next: () => number) {}
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    const total = choices.reduce((sum, [, weight]) => sum + weight, 0);
    let r = this.next() * total;
    for (const [choice, weight] of choices) {
      if ((r -= weight) < 0) return choice;
    }
    return choices[choices.length - 1]![0];
  }
  shuffled<T>(items: readonly T[]): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy;
  }
}

/** A replica: `echodb run --roles worker,listener` under one WORKER_ID, restarted under the same one. */
interface Replica {
  name: string;
  /** Every process this replica ran, the current one last. */
  history?: EchoProcess[];
  env: Record<string, string>;
  process: EchoProcess;
  alive: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (ms: number) => Math.round(ms / 100) / 10;
const schemaSuffix = (index: number) => (index === 0 ? '' : `_${String.fromCharCode(97 + index)}`);

export async function runSoak(options: SoakOptions): Promise<SoakSummary> {
  const log = options.log ?? ((line: string) => console.log(line));
  const schemaCount = options.schemas ?? 3;
  if (schemaCount < 3 || schemaCount > 26) throw new RangeError('the soak watches 3 to 26 schemas');
  const convergeTimeoutMs = options.convergeTimeoutMs ?? 120_000;
  const maxLive = options.maxLiveTables ?? 40;
  const startedAt = Date.now();
  const problems: string[] = [];

  const ownRedis = options.redis ? undefined : await startLocalServers({ only: ['redis'], env: {} });
  const redis = options.redis ?? ownRedis!.settings.redis;
  const schemasOf = (schema: string) => Array.from({ length: schemaCount }, (_, i) => `${schema}${schemaSuffix(i)}`);
  let stack: EchoStack | undefined;
  const replicas: Replica[] = [];
  const processes: EchoProcess[] = [];
  let load: pg.Client | undefined;

  /** Follows a replica's current process: `alive` turns false when that process exits. */
  const watch = (replica: Replica): Replica => {
    processes.push(replica.process);
    (replica.history ??= []).push(replica.process);
    const current = replica.process;
    void current.exited.then(() => {
      if (replica.process === current) replica.alive = false;
    });
    return replica;
  };
  /** Starts (or starts again) the replica's `echodb run`, under its WORKER_ID; resolves once both roles run. */
  const startReplica = async (replica: Replica): Promise<void> => {
    replica.process = await startEchoProcess(replica.env, ROLES);
    replica.alive = true;
    watch(replica);
  };

  try {
    log(`soak: seed ${options.seed}, ${schemaCount} schemas, ${seconds(options.durationMs)} s of load, two replicas (worker,listener) on a Redis lease`);
    stack = await startEchoStack(
      (schema) => ({
        SYNC_SCHEMA: schemasOf(schema).join(','),
        ...FAST_ELECTION,
        REDIS_HOST: redis.host,
        REDIS_PORT: String(redis.port),
        REDIS_PASSWORD: redis.password,
        // Each replica its own: the lease token, the outbox's handled_by, the log lines and connection names
        // say which replica acted.
        WORKER_ID: 'replica-a',
      }),
      options.servers,
      {
        roles: ROLES,
        beforeSetup: async (sql, schema) => {
          for (const extra of schemasOf(schema).slice(1)) await sql.query(`CREATE SCHEMA ${extra}`);
        },
      },
    );
    const schemas = schemasOf(stack.schema);
    replicas.push(watch({ name: 'replica-a', env: stack.env, process: stack.worker, alive: true }));
    const second: Replica = { name: 'replica-b', env: { ...stack.env, WORKER_ID: 'replica-b' }, process: stack.worker, alive: false };
    await startReplica(second);
    replicas.push(second);
    log(`soak: stack ready in ${seconds(Date.now() - startedAt)} s; schemas ${schemas.join(', ')}`);

    load = await stack.database.connect();
    // A statement stuck behind a lock must not hold the soak up for ever: it fails and is reported.
    await load.query("SET statement_timeout = '30s'");

    // ---- the load -----------------------------------------------------------------------------------------
    const statements = Object.fromEntries(STATEMENT_KINDS.map((kind) => [kind, 0])) as Record<StatementKind, number>;
    const statementErrors: string[] = [];
    /** Every statement with its time (seconds from the start of the load), for the artifacts. */
    const statementLog: string[] = [];
    let tablesCreated = 0;
    let tablesDropped = 0;
    const live = new Map<string, string[]>(schemas.map((schema) => [schema, []]));
    /** `schema.table` of the tables without a primary key (CREATE TABLE AS copies no constraint). */
    const keyless = new Set<string>();
    /** Names that were dropped or renamed away in a schema, for a CREATE of the same name (create, drop, create). */
    const freed = new Map<string, string[]>(schemas.map((schema) => [schema, []]));
    let lastName = 0;
    /** Primary key constraint (and index) names, unique for the run. */
    let lastKey = 0;
    let lastRowId = 0;
    const liveCount = () => [...live.values()].reduce((sum, names) => sum + names.length, 0);
    const loadDice = new Dice(seededRandom(options.seed));
    const loadStartedAt = Date.now();
    const loadEndsAt = loadStartedAt + options.durationMs;
    let loadOver = false;
    let loadSeconds = 0;
    let wakeFaults = () => {};
    const loadOverSignal = new Promise<void>((resolve) => (wakeFaults = resolve));
    /** Sleeps, but no longer than until the load is over. */
    const pause = (ms: number) => Promise.race([sleep(ms), loadOverSignal]);
    const at = () => seconds(Date.now() - loadStartedAt);

    /** A name free in every schema: two source tables of one name would want one ClickHouse table ({table}). */
    const takeFresh = (schema: string, dice: Dice): string => {
      const inUse = new Set([...live.values()].flat());
      const reusable = freed.get(schema)!.filter((name) => !inUse.has(name));
      if (reusable.length > 0 && dice.chance(0.25)) {
        const name = dice.pick(reusable);
        freed.get(schema)!.splice(freed.get(schema)!.indexOf(name), 1);
        return name;
      }
      return `t${++lastName}`;
    };
    const rows = (count: number) => {
      const from = lastRowId + 1;
      lastRowId += count;
      return [from, lastRowId] as const;
    };

    const oneStatement = async (): Promise<void> => {
      const dice = loadDice;
      const schema = dice.pick(schemas);
      const names = live.get(schema)!;
      let kind = dice.weighted<StatementKind>([
        ['create', 20],
        ['ctas', 10],
        ['drop', 14],
        ['rename', 12],
        ['move', 6],
        ['key', 4],
        ['insert', 34],
      ]);
      const keyable = names.filter((name) => keyless.has(`${schema}.${name}`));
      if ((kind === 'create' || kind === 'ctas') && liveCount() >= maxLive) kind = 'drop';
      if (kind === 'key' && keyable.length === 0) kind = 'insert';
      if (kind !== 'create' && kind !== 'ctas' && names.length === 0) kind = 'create';
      let text: string;
      let values: unknown[] = [];
      let apply = () => {};
      switch (kind) {
        case 'create': {
          const name = takeFresh(schema, dice);
          // Key indexes named once per run: a renamed table keeps its index name, and a move would meet a table
          // created under the old name in the target schema.
          text = `CREATE TABLE ${schema}.${name} (id int, v text, CONSTRAINT k${++lastKey} PRIMARY KEY (id))`;
          apply = () => {
            names.push(name);
            tablesCreated++;
          };
          break;
        }
        case 'ctas': {
          const name = takeFresh(schema, dice);
          const sources = schemas.flatMap((s) => live.get(s)!.map((table) => `${s}.${table}`));
          if (sources.length > 0 && dice.chance(0.5)) {
            text = `CREATE TABLE ${schema}.${name} AS SELECT * FROM ${dice.pick(sources)}`;
          } else {
            text = `CREATE TABLE ${schema}.${name} AS SELECT g AS id, md5(g::text) AS v FROM generate_series($1::int, $2::int) g`;
            values = [...rows(dice.int(0, 50))];
          }
          apply = () => {
            names.push(name);
            keyless.add(`${schema}.${name}`);
            tablesCreated++;
          };
          break;
        }
        case 'drop': {
          const victims = dice.shuffled(names).slice(0, names.length > 1 && dice.chance(0.15) ? 2 : 1);
          text = `DROP TABLE ${victims.map((name) => `${schema}.${name}`).join(', ')}`;
          apply = () => {
            for (const victim of victims) names.splice(names.indexOf(victim), 1);
            for (const victim of victims) keyless.delete(`${schema}.${victim}`);
            freed.get(schema)!.push(...victims);
            tablesDropped += victims.length;
          };
          break;
        }
        case 'rename': {
          const from = dice.pick(names);
          const to = `t${++lastName}`;
          text = `ALTER TABLE ${schema}.${from} RENAME TO ${to}`;
          apply = () => {
            names[names.indexOf(from)] = to;
            if (keyless.delete(`${schema}.${from}`)) keyless.add(`${schema}.${to}`);
            freed.get(schema)!.push(from);
          };
          break;
        }
        case 'move': {
          // Into another watched schema: one mirror takes it out, another puts it in, both wanting its
          // ClickHouse table under the default DESTINATION_TABLE_TEMPLATE.
          const table = dice.pick(names);
          const target = dice.pick(schemas.filter((other) => other !== schema));
          text = `ALTER TABLE ${schema}.${table} SET SCHEMA ${target}`;
          apply = () => {
            names.splice(names.indexOf(table), 1);
            live.get(target)!.push(table);
            if (keyless.delete(`${schema}.${table}`)) keyless.add(`${target}.${table}`);
            freed.get(schema)!.push(table);
          };
          break;
        }
        case 'key': {
          const table = dice.pick(keyable);
          text = `ALTER TABLE ${schema}.${table} ADD CONSTRAINT k${++lastKey} PRIMARY KEY (id)`;
          apply = () => keyless.delete(`${schema}.${table}`);
          break;
        }
        case 'insert': {
          text = `INSERT INTO ${schema}.${dice.pick(names)} (id, v) SELECT g, md5(g::text) FROM generate_series($1::int, $2::int) g`;
          values = [...rows(dice.int(1, 20))];
          break;
        }
      }
      statements[kind]++;
      statementLog.push(`${at()} ${text}${values.length > 0 ? ` ${JSON.stringify(values)}` : ''}`);
      try {
        await load!.query(text, values);
        apply();
      } catch (error) {
        statementErrors.push(`${at()} s: ${text}: ${error instanceof Error ? error.message : String(error)}`);
        log(`soak ${at()} s: statement failed: ${text}: ${String(error)}`);
      }
    };

    const runLoad = async () => {
      while (Date.now() < loadEndsAt) {
        await oneStatement();
        await sleep(loadDice.int(20, 300));
      }
      loadOver = true;
      loadSeconds = seconds(Date.now() - loadStartedAt);
      wakeFaults();
    };

    // ---- the faults ---------------------------------------------------------------------------------------
    const faults = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>;
    const faultLog: FaultRecord[] = [];
    const faultDice = new Dice(seededRandom(options.seed ^ 0x9e3779b9));
    let current: string | undefined;
    const { knobs } = stack.peerdb;
    const leaderName = async (): Promise<string | undefined> =>
      (await redisLeaseHolder(stack!.config.redis!).catch(() => null))?.workerId;

    const restart = async (replica: Replica): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          await startReplica(replica);
          return;
        } catch (error) {
          const message = `${replica.name} did not start again (attempt ${attempt}): ${String(error).split('\n')[0]}`;
          log(`soak ${at()} s: ${message}`);
          if (attempt === 3) {
            problems.push(message);
            return;
          }
          await sleep(2000);
        }
      }
    };

    const injectFault = async (kind: FaultKind): Promise<void> => {
      const began = Date.now();
      const durationMs = faultDice.int(3000, 6000);
      let detail = '';
      switch (kind) {
        case 'peerdb-503':
          detail = `every PeerDB request answered 503 for ${seconds(durationMs)} s`;
          current = kind;
          log(`soak ${at()} s: fault ${kind}: ${detail}`);
          knobs.failUntil = Date.now() + durationMs;
          await pause(durationMs);
          knobs.failUntil = undefined;
          break;
        case 'peerdb-errors':
          detail = `30% of PeerDB requests answered 503 for ${seconds(durationMs)} s`;
          current = kind;
          log(`soak ${at()} s: fault ${kind}: ${detail}`);
          knobs.errorRate = 0.3;
          await pause(durationMs);
          knobs.errorRate = 0;
          break;
        case 'peerdb-latency': {
          const latencyMs = faultDice.int(300, 2500);
          detail = `${latencyMs} ms added to every PeerDB answer (request timeout 2 s) for ${seconds(durationMs)} s`;
          current = kind;
          log(`soak ${at()} s: fault ${kind}: ${detail}`);
          knobs.latencyMs = latencyMs;
          await pause(durationMs);
          knobs.latencyMs = 0;
          break;
        }
        case 'sigkill':
        case 'sigterm': {
          const replica = faultDice.pick(replicas);
          const downMs = faultDice.int(1000, 4000);
          const leader = await leaderName();
          const role = leader === replica.name ? 'the leader' : 'a follower';
          current = `${kind} ${replica.name}`;
          log(`soak ${at()} s: fault ${kind}: ${replica.name} (${role}), down for ${seconds(downMs)} s, then restarted`);
          let exit: string;
          if (kind === 'sigkill') {
            replica.process.kill('SIGKILL');
            await replica.process.exited;
            exit = 'killed';
          } else {
            const stoppingAt = Date.now();
            // A graceful stop waits for running activities (shutdownGraceTime 30 s); past a minute it is a hang.
            const code = await Promise.race([replica.process.stop(), sleep(60_000).then(() => 'hung' as const)]);
            if (code === 'hung') {
              problems.push(`${replica.name} did not exit within 60 s of SIGTERM at ${at()} s`);
              replica.process.kill('SIGKILL');
              await replica.process.exited;
            } else if (code !== 0) {
              problems.push(`${replica.name} exited ${code} on SIGTERM at ${at()} s`);
            }
            exit = `exited ${code} after ${seconds(Date.now() - stoppingAt)} s`;
          }
          // Down for a while even when the load ends meanwhile: the restart is part of the fault.
          await sleep(downMs);
          const restartingAt = Date.now();
          await restart(replica);
          detail = `${replica.name} (${role}) ${exit}; restarted in ${seconds(Date.now() - restartingAt)} s`;
          log(`soak ${at()} s: ${detail}`);
          break;
        }
      }
      faults[kind]++;
      faultLog.push({ kind, atSeconds: seconds(began - loadStartedAt), seconds: seconds(Date.now() - began), detail });
      current = undefined;
    };

    const runFaults = async () => {
      // One fault at a time, in random order; every kind comes once before any comes again.
      let deck: FaultKind[] = [];
      await pause(faultDice.int(2000, 5000));
      while (!loadOver) {
        if (deck.length === 0) deck = faultDice.shuffled(FAULT_KINDS);
        await injectFault(deck.pop()!);
        await pause(faultDice.int(2000, 5000));
      }
    };

    const progress = setInterval(() => {
      void (async () => {
        const { rows: pending } = await stack!.sql
          .query<{ count: string }>("SELECT count(*) FROM echodb.ddl_events WHERE status = 'pending'")
          .catch(() => ({ rows: [{ count: '?' }] }));
        const total = STATEMENT_KINDS.reduce((sum, kind) => sum + statements[kind], 0);
        log(
          `soak ${at()} s: ${total} statements (${STATEMENT_KINDS.map((k) => `${k} ${statements[k]}`).join(', ')}), ` +
            `${liveCount()} tables, ${faultLog.length} faults done${current ? `, now ${current}` : ''}, ` +
            `replicas up ${replicas.filter((r) => r.alive).map((r) => r.name).join(',') || 'none'}, ` +
            `${stack!.peerdb.requests.length} PeerDB requests, ${pending[0]!.count} pending in the outbox`,
        );
      })();
    }, 10_000);
    try {
      await Promise.all([runLoad(), runFaults()]);
    } finally {
      clearInterval(progress);
      Object.assign(knobs, { failUntil: undefined, errorRate: 0, latencyMs: 0 });
    }
    for (const replica of replicas.filter((r) => !r.alive)) {
      problems.push(`${replica.name} was not running when the load ended`);
      await restart(replica);
    }

    // ---- the end state ------------------------------------------------------------------------------------
    const quietAt = Date.now();
    log(`soak ${at()} s: load and faults over; waiting up to ${seconds(convergeTimeoutMs)} s for the end state`);
    let lastReport = quietAt;
    const onWait = (remaining: string[]) => {
      if (Date.now() - lastReport < 10_000) return;
      lastReport = Date.now();
      log(`soak ${at()} s: not converged yet, ${remaining.length} problem(s): ${remaining.slice(0, 4).join('; ')}`);
    };
    // The state (membership, outbox, mirrors running) is waited for; duplicated requests are found once it
    // settled and never go away, so they do not count against the time to converge.
    const stateOnly = (found: string[]) => {
      const duplicates = new Set(duplicatedRequests(stack!.peerdb.requests));
      return found.filter((problem) => !duplicates.has(problem));
    };
    let endProblems = await convergence(stack, { schemas, timeoutMs: convergeTimeoutMs, requireRunning: true, onWait });
    let secondsToConverge: number | null = stateOnly(endProblems).length === 0 ? seconds(Date.now() - quietAt) : null;
    if (secondsToConverge !== null) {
      // Converged once; still so a few seconds later (nothing undoes the end state).
      await sleep(3000);
      const later = await convergence(stack, { schemas, timeoutMs: 0, requireRunning: true });
      const settledProblems = stateOnly(later);
      if (settledProblems.length > 0) secondsToConverge = null;
      endProblems = [...settledProblems.map((problem) => `3 s after converging: ${problem}`), ...later.filter((p) => !settledProblems.includes(p))];
    }
    log(`soak ${at()} s: ${secondsToConverge === null ? 'did NOT converge' : `converged in ${secondsToConverge} s`}, ${endProblems.length} problem(s)`);
    problems.push(...endProblems);

    // ---- what happened ------------------------------------------------------------------------------------
    const count = (values: string[]) =>
      values.reduce<Record<string, number>>((acc, value) => ((acc[value] = (acc[value] ?? 0) + 1), acc), {});
    const requests = stack.peerdb.requests;
    const { rows: handled } = await stack.sql.query<{ handled_by: string | null; count: string }>(
      'SELECT handled_by, count(*) FROM echodb.ddl_events GROUP BY 1 ORDER BY 1',
    );
    const { rows: finalTables } = await stack.sql.query<{ count: string }>(
      'SELECT count(*) FROM pg_tables WHERE schemaname = ANY($1::text[])',
      [schemas],
    );
    const { rows: unmirrored } = await stack.sql.query<{ count: string }>(
      'SELECT count(*) FROM echodb.unmirrored_tables WHERE schema_name = ANY($1::text[])',
      [schemas],
    );
    const { rows: failed } = await stack.sql.query<{ id: string; mirror: string; operation: string; tables: string[]; error: string }>(
      "SELECT id, mirror, operation, tables, error FROM echodb.mirror_operations WHERE result = 'failed' ORDER BY id DESC LIMIT 20",
    );
    const summary: SoakSummary = {
      seed: options.seed,
      schemas,
      loadSeconds,
      statements,
      tablesCreated,
      tablesDropped,
      statementErrors,
      faults,
      faultLog,
      leaderElections: processes.reduce((sum, p) => sum + p.lines.filter((line) => /is leader/.test(line)).length, 0),
      handledBy: Object.fromEntries(handled.map((row) => [row.handled_by ?? '(none)', Number(row.count)])),
      secondsToConverge,
      problems,
      peerdbRequests: {
        total: requests.length,
        byPath: count(requests.map((r) => `${r.method} ${r.path}`)),
        byStatus: count(requests.map((r) => String(r.status ?? 'unanswered'))),
      },
      finalTables: Number(finalTables[0]!.count),
      unmirroredTables: Number(unmirrored[0]!.count),
      mirrors: stack.peerdb.mirrors().map(({ name, status, tables, error }) => ({
        name,
        status,
        tables: tables.length,
        ...(error !== undefined && { error }),
      })),
      mirrorOperations: {},
      reconcileRuns: 0,
      requestHistory: {},
      failedOperations: failed.reverse().map((op) => `#${op.id} ${op.operation} ${op.mirror} [${op.tables.join(', ')}]: ${op.error}`),
      totalSeconds: 0,
    };
    const { rows: operations } = await stack.sql.query<{ operation: string; result: string; count: string }>(
      'SELECT operation, result, count(*) FROM echodb.mirror_operations GROUP BY 1, 2 ORDER BY 1, 2',
    );
    summary.mirrorOperations = Object.fromEntries(operations.map((row) => [`${row.operation} ${row.result}`, Number(row.count)]));
    summary.reconcileRuns = processes.reduce((sum, p) => sum + p.lines.filter((line) => /listener: reconcile .* started/.test(line)).length, 0);
    const named = new Set(problems.flatMap((problem) => problem.match(/\bmirror (\S+)|(?:from|to) (\S+)$|held by ([^,\s]+)/)?.slice(1).filter(Boolean) ?? []));
    summary.requestHistory = Object.fromEntries(
      [...named].map((mirror) => [mirror, mirrorHistory(requests, mirror, loadStartedAt, faultLog)]),
    );
    if (problems.length > 0) {
      log(`soak: the end state is WRONG (seed ${options.seed}):\n  ${problems.slice(0, 40).join('\n  ')}`);
      for (const [mirror, history] of Object.entries(summary.requestHistory)) {
        log(`soak: PeerDB requests about ${mirror} (times from the start of the load):\n  ${history.join('\n  ')}`);
      }
      log(`soak: mirror operations ${JSON.stringify(summary.mirrorOperations)}`);
      log(`soak: mirrors ${JSON.stringify(summary.mirrors)}`);
      if (summary.failedOperations.length > 0) log(`soak: failed mirror operations:\n  ${summary.failedOperations.join('\n  ')}`);
      for (const replica of replicas) {
        const noteworthy = replica.process.lines.filter((line) => /"level":"(warn|error|fatal)"|Error/.test(line)).slice(-25);
        log(`soak: ${replica.name}'s last warnings and errors:\n${noteworthy.join('\n')}`);
      }
    }
    summary.totalSeconds = seconds(Date.now() - startedAt);
    if (options.artifactsDir !== undefined) {
      await writeArtifacts(options.artifactsDir, {
        stack,
        replicas,
        since: loadStartedAt,
        statements: statementLog,
        summary,
      });
      log(`soak: the run's record is in ${options.artifactsDir}`);
    }
    log(
      `soak: done in ${summary.totalSeconds} s: ${STATEMENT_KINDS.map((k) => `${k} ${statements[k]}`).join(', ')}; ` +
        `faults ${FAULT_KINDS.map((k) => `${k} ${faults[k]}`).join(', ')}; ` +
        `converged ${secondsToConverge === null ? 'NOT' : `in ${secondsToConverge} s`}; ${requests.length} PeerDB requests`,
    );
    return summary;
  } finally {
    await load?.end().catch(() => undefined);
    await Promise.all(
      processes.map(async (process) => {
        const timer = setTimeout(() => process.kill('SIGKILL'), 45_000);
        await process.stop();
        clearTimeout(timer);
      }),
    );
    await stack?.close();
    await ownRedis?.stop();
  }
}

/** The mirror a Flow API request names, if any. */
function mirrorOf(request: RequestLogEntry): string | undefined {
  const { flowJobName, connectionConfigs } = (request.body ?? {}) as MirrorEditBody;
  return flowJobName ?? connectionConfigs?.flowJobName;
}

/** The requests that changed (or tried to change) one mirror, one line each, with the fault that was on then. */
function mirrorHistory(requests: readonly RequestLogEntry[], mirror: string, since: number, faults: readonly FaultRecord[]): string[] {
  return requests.flatMap((request) => {
    const body = (request.body ?? {}) as MirrorEditBody;
    if (mirrorOf(request) !== mirror || request.path === '/v1/mirrors/status') return [];
    const t = seconds(request.at.getTime() - since);
    const fault = faults.find((f) => f.atSeconds <= t && t <= f.atSeconds + f.seconds);
    const update = body.flowConfigUpdate?.cdcFlowConfigUpdate;
    const tablesOf = (mappings?: { sourceTableIdentifier: string }[]) =>
      (mappings ?? []).map((m) => m.sourceTableIdentifier.slice(m.sourceTableIdentifier.indexOf('.') + 1)).join(',');
    const what =
      request.path === '/v1/flows/cdc/create'
        ? `create [${tablesOf(body.connectionConfigs?.tableMappings)}]`
        : `${body.requestedFlowState ?? '?'}${update?.additionalTables?.length ? ` +[${tablesOf(update.additionalTables)}]` : ''}` +
          `${update?.removedTables?.length ? ` -[${tablesOf(update.removedTables)}]` : ''}`;
    return [`${t} s ${what} -> ${request.status ?? 'unanswered'}${fault ? ` (during ${fault.kind})` : ''}`];
  });
}

/** The run's record, for diagnosis (see SoakOptions.artifactsDir). */
async function writeArtifacts(
  dir: string,
  run: { stack: EchoStack; replicas: Replica[]; since: number; statements: string[]; summary: SoakSummary },
): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const write = (name: string, text: string) => fs.writeFileSync(path.join(dir, name), text.endsWith('\n') ? text : `${text}\n`);
  for (const replica of run.replicas) {
    write(
      `${replica.name}.log`,
      (replica.history ?? [replica.process])
        .map((process, i) => `=== ${replica.name}, process ${i + 1}\n${process.lines.join('\n')}`)
        .join('\n'),
    );
  }
  write('statements.log', run.statements.join('\n'));
  write(
    'peerdb-requests.jsonl',
    run.stack.peerdb.requests
      .map(({ at, method, path: route, body, status }) =>
        JSON.stringify({ t: seconds(at.getTime() - run.since), at: at.toISOString(), method, path: route, status: status ?? null, body }),
      )
      .join('\n'),
  );
  const dump = async (name: string, query: string) => {
    const { rows } = await run.stack.sql.query(query);
    write(name, rows.map((row) => JSON.stringify(row)).join('\n'));
  };
  await dump('ddl-events.jsonl', 'SELECT * FROM echodb.ddl_events ORDER BY id');
  await dump('mirror-operations.jsonl', 'SELECT * FROM echodb.mirror_operations ORDER BY id');
  // Every run of every mirror workflow (for `echodb replay --file`).
  const mirrors = new Set(run.stack.peerdb.requests.flatMap((request) => mirrorOf(request) ?? []));
  for (const mirror of mirrors) {
    for await (const { workflowId, runId } of run.stack.temporal.workflow.list({ query: `WorkflowId = "${mirrorWorkflowId(mirror)}"` })) {
      await saveHistory(run.stack.temporal, workflowId, `${mirror}-${runId}`, { runId, dir: path.join(dir, 'histories') });
    }
  }
  write('summary.json', JSON.stringify(run.summary, null, 2));
}
