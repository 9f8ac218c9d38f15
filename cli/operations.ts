// The operator commands that look at a running deployment: verify, verify-all, status and cleanup. They start
// workflows and read EchoDB's tables, like the HTTP API (api/), and print for a terminal or, with --json, for
// scripts; cleanup deletes old history rows itself (lib/retention.ts), as the cleanup schedule does.
import type { Client } from '@temporalio/client';
import type pg from 'pg';
import { pino } from 'pino';
import { createBreakers } from '../lib/circuit-breaker.js';
import type { Config } from '../lib/config.js';
import type { SourceQuery } from '../lib/mirrored-tables.js';
import { qualifiedName } from '../lib/workflow-safe/workflow-ids.js';
import { PeerDbClient } from '../lib/peerdb/client.js';
import { createPostgresPool } from '../lib/postgres.js';
import { deleteOldRows, type CleanupReport } from '../lib/retention.js';
import { usableSchemaVersion } from '../sql/migrations.js';
import { withTemporalClient } from '../lib/temporal-client.js';
import { advisoryLockHolder } from '../listener/advisory-lock-lease.js';
import { redisLeaseHolder } from '../listener/redis-lease.js';
import {
  durableFigures,
  latestVerifications,
  mirrorsOverview,
  operationJson,
  unmirroredJson,
  verificationRowJson,
  waitJson,
} from '../api/state.js';
import {
  findMirroredTable,
  resultWithin,
  startVerify,
  startVerifyAll,
  verificationJson,
  verifyAllJson,
} from '../api/verification.js';
import { describeDiff, diffJson, startDiff } from '../api/diff.js';
import { mirrorReplicationJson, publicationJson, replicationExtrasJson, slotJson } from '../api/replication.js';
import {
  dropOrphans,
  formatBytes,
  orphansOf,
  readReplicationHealth,
  type ReplicationHealth,
  type SlotHealth,
} from '../lib/replication-slots.js';
import type { DiffResult } from '../workflows/diff-model.js';
import type { TableRef, VerificationResult, VerifyAllReport } from '../workflows/model.js';

/** What a command found, for its exit code: all well, a problem found (mismatch), or the job not done. */
export type Outcome = 'ok' | 'found' | 'failure';

export interface OperationOptions {
  json?: boolean;
  /** Seconds to wait for the result; undefined waits as long as it takes. */
  wait?: number;
}

async function withSource<T>(config: Config, use: (query: SourceQuery, pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = createPostgresPool(config.postgres, 'echodb-cli');
  try {
    return await use((text, values) => pool.query(text, values), pool);
  } finally {
    await pool.end();
  }
}

async function awaitResult<T>(temporal: Client, handle: Parameters<typeof resultWithin>[1], wait: number | undefined): Promise<T> {
  const result = await resultWithin<T>(temporal, handle, wait === undefined ? 2 ** 31 - 1 : wait * 1000);
  if (result === undefined) {
    throw new Error(`${handle.workflowId} still runs after ${wait} s; follow it in the Temporal UI or GET /verifications/${encodeURIComponent(handle.workflowId)}`);
  }
  return result;
}

const counts = (r: VerificationResult) => `PostgreSQL ${r.postgresCount ?? '?'}, ClickHouse ${r.clickhouseCount ?? '?'}`;

function describeVerification(result: VerificationResult): string {
  const table = qualifiedName(result);
  if (result.status === 'match') return `${table} match: ${counts(result)}`;
  if (result.status === 'mismatch') {
    return `${table} mismatch: ${counts(result)}, difference ${result.difference} after ${result.attempts} attempt(s)`;
  }
  return `${table} error: ${result.error ?? 'a side could not be counted'}`;
}

/** `echodb verify <schema.table>`: counts one mirrored table on both sides now. */
export async function verifyTable(config: Config, ref: TableRef, options: OperationOptions): Promise<Outcome> {
  return withSource(config, (query) =>
    withTemporalClient(config.temporal, async (temporal) => {
      const table = await findMirroredTable(query, ref);
      const handle = await startVerify({ config, temporal }, table);
      const result = await awaitResult<VerificationResult>(temporal, handle, options.wait);
      console.log(options.json ? JSON.stringify(verificationJson(result), null, 2) : `verify: ${describeVerification(result)} (workflow ${result.workflowId})`);
      return result.status === 'match' ? 'ok' : result.status === 'mismatch' ? 'found' : 'failure';
    }),
  );
}

/** `echodb diff <schema.table>`: a row diff of one mirrored table now. Exit 3 when rows or columns differ. */
export async function diffTable(config: Config, ref: TableRef, options: OperationOptions): Promise<Outcome> {
  return withSource(config, (query) =>
    withTemporalClient(config.temporal, async (temporal) => {
      const table = await findMirroredTable(query, ref);
      const handle = await startDiff({ config, temporal }, table);
      const result = await awaitResult<DiffResult>(temporal, handle, options.wait);
      if (options.json) console.log(JSON.stringify(diffJson(result), null, 2));
      else for (const [i, line] of describeDiff(result).entries()) console.log(i === 0 ? `diff: ${line} (workflow ${result.workflowId})` : line);
      if (result.status === 'error') return 'failure';
      return result.match ? 'ok' : 'found';
    }),
  );
}

/** `echodb verify-all`: reconcile, then every mirrored table. */
export async function verifyAll(config: Config, options: OperationOptions): Promise<Outcome> {
  return withTemporalClient(config.temporal, async (temporal) => {
    const handle = await startVerifyAll({ config, temporal });
    const report = await awaitResult<VerifyAllReport>(temporal, handle, options.wait);
    if (options.json) {
      console.log(JSON.stringify(verifyAllJson(report, handle.workflowId), null, 2));
    } else {
      console.log(
        `verify-all${report.mode === 'checksum' ? ' (row diffs)' : ''}: ${report.tables} tables: ${report.matched} match, ${report.mismatched} mismatch, ` +
          `${report.errors} error(s) (workflow ${handle.workflowId})`,
      );
      for (const result of report.results) if (result.status !== 'match') console.log(`  ${describeVerification(result)}`);
      for (const diff of report.diffs ?? []) if (!diff.match || diff.status === 'error') for (const line of describeDiff(diff)) console.log(`  ${line}`);
      if (report.reconcile === null) console.log('  reconcile did not run');
      else console.log(`  reconcile: ${report.reconcile.added.length} to add, ${report.reconcile.removed.length} to remove`);
    }
    return report.mismatched > 0 ? 'found' : report.errors > 0 ? 'failure' : 'ok';
  });
}

/** The state of PeerDB's mirrors by name, or why it could not be read. */
async function peerDbStates(config: Config): Promise<Map<string, string> | Error> {
  const peerdb = PeerDbClient.fromConfig(
    { ...config.peerdb, requestTimeoutMs: Math.min(config.peerdb.requestTimeoutMs, 5000) },
    createBreakers(config, pino({ level: 'silent' })).peerdb,
  );
  try {
    return new Map((await peerdb.listMirrors()).map((mirror) => [mirror.name, mirror.status]));
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** `echodb status`: the leader, the outbox, the mirrors and the latest verifications. */
export async function status(config: Config, options: OperationOptions): Promise<Outcome> {
  return withSource(config, async (query): Promise<Outcome> => {
    const [leader, figures, mirrors, verifications, states, replication] = await Promise.all([
      config.redis ? redisLeaseHolder(config.redis).catch((error: Error) => error) : advisoryLockHolder(query),
      durableFigures(query),
      mirrorsOverview(query),
      latestVerifications(query, 20),
      peerDbStates(config),
      readReplicationHealth(query).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error)))),
    ]);
    const report = {
      leader: leader instanceof Error
        ? { error: `Redis: ${leader.message}` }
        : leader && { worker_id: leader.workerId, backend: leader.backend, expires_in_ms: leader.expiresInMs },
      outbox: { pending: figures.outbox.pending, oldest_pending_age_seconds: figures.outbox.oldestPendingAgeSeconds },
      mirrors: mirrors.map(({ mirror, tables, lastOperation, waiting, unmirrored }) => ({
        mirror,
        peerdb_state: states instanceof Error ? null : (states.get(mirror) ?? 'not found'),
        tables: tables.length,
        last_operation: lastOperation && operationJson(lastOperation),
        waiting: waiting && waitJson(waiting),
        unmirrored: unmirrored.map(unmirroredJson),
        replication: replication instanceof Error ? null : mirrorReplicationJson(replication, mirror),
      })),
      ...(states instanceof Error && { peerdb_error: states.message }),
      ...replicationExtrasJson(replication),
      verifications: verifications.map(verificationRowJson),
    };
    if (options.json) {
      console.log(JSON.stringify(report, null, 2));
      return 'ok';
    }
    const { leader: lead, outbox } = report;
    console.log(
      `leader:  ${lead === null ? 'none' : 'error' in lead ? `unknown (${lead.error})` : `${lead.worker_id} (${lead.backend === 'redis' ? `Redis lease, ${Math.ceil((lead.expires_in_ms ?? 0) / 1000)} s left` : 'PostgreSQL advisory lock'})`}`,
    );
    console.log(
      `outbox:  ${outbox.pending} pending${outbox.oldest_pending_age_seconds === null ? '' : `, the oldest for ${Math.round(outbox.oldest_pending_age_seconds)} s`}`,
    );
    const tableCount = report.mirrors.reduce((sum, mirror) => sum + mirror.tables, 0);
    console.log(`mirrors: ${report.mirrors.length} mirror(s), ${tableCount} table(s)${report.peerdb_error ? `; PeerDB: ${report.peerdb_error}` : ''}`);
    for (const mirror of report.mirrors) {
      const last = mirror.last_operation;
      console.log(
        `  ${mirror.mirror}  ${mirror.peerdb_state ?? 'state unknown'}  ${mirror.tables} table(s)` +
          (last ? `  last: ${last.operation} ${last.result} at ${last.at}${last.error ? ` (${last.error})` : ''}` : ''),
      );
      const wait = mirror.waiting;
      if (wait) {
        console.log(
          `    waiting: ${wait.operation} since ${wait.since}, PeerDB ${wait.state}` +
            (wait.stalled ? `; STALLED since ${wait.stalled_since}: ${wait.diagnosis}` : ''),
        );
      }
      for (const table of mirror.unmirrored) console.log(`    not mirrored: ${table.table}: ${table.reason}`);
    }
    if (replication instanceof Error) console.log(`replication: slots unreadable: ${replication.message}`);
    else for (const line of describeReplication(replication)) console.log(line);
    console.log(`verifications: latest of ${report.verifications.length} table(s), newest first`);
    for (const row of report.verifications) {
      console.log(`  ${row.status.padEnd(8)}  ${row.table}  PostgreSQL ${row.postgres_count ?? '?'}, ClickHouse ${row.clickhouse_count ?? '?'}  at ${row.timestamp}`);
    }
    return 'ok';
  });
}

export interface CleanupCommandOptions {
  json?: boolean;
  dryRun?: boolean;
  /** Days; default RETENTION_DAYS. */
  olderThan?: number;
  /** Rows per statement; default RETENTION_BATCH_SIZE. */
  batchSize?: number;
}

function describeCleanup(report: CleanupReport): string[] {
  const verb = report.dryRun ? 'would delete' : 'deleted';
  const head =
    `cleanup${report.dryRun ? ' (dry run)' : ''}: ${verb} rows older than ${report.olderThanDays} day(s) ` +
    `(before ${report.cutoff}), ${report.batchSize} a statement, in ${(report.durationMs / 1000).toFixed(1)} s`;
  const width = Math.max(...report.tables.map(({ table }) => table.length));
  const lines = report.tables.map((t) =>
    `  echodb.${t.table.padEnd(width)}  ${verb} ${t.deleted}` +
      (report.dryRun ? '' : ` in ${t.batches} batch(es), the longest ${t.longestBatchMs} ms`),
  );
  return [head, ...lines, "  kept whatever their age: pending events, each table's latest verification and row diff, each mirror's latest operation"];
}

/** `echodb cleanup`: deletes the history rows older than the retention period, in batches (lib/retention.ts). */
export async function cleanup(config: Config, options: CleanupCommandOptions): Promise<Outcome> {
  return withSource(config, async (query, pool): Promise<Outcome> => {
    await usableSchemaVersion(pool);
    const report = await deleteOldRows(query, {
      olderThanDays: options.olderThan ?? config.retention.days,
      batchSize: options.batchSize ?? config.retention.batchSize,
      dryRun: options.dryRun ?? false,
    });
    console.log(options.json ? JSON.stringify(report, null, 2) : describeCleanup(report).join('\n'));
    return 'ok';
  });
}

const slotOwner = (slot: { owner: string; mirror: string; reason: string }) =>
  slot.owner === 'mirror' ? `mirror ${slot.mirror}` : slot.owner === 'orphan' ? `ORPHAN: ${slot.reason}` : `not EchoDB's: ${slot.reason}`;

function describeSlot(slot: SlotHealth): string {
  const state = slot.active
    ? `active (pid ${slot.activePid})`
    : `INACTIVE${slot.inactiveSince ? ` since ${slot.inactiveSince.toISOString()} (${Math.round(slot.inactiveSeconds ?? 0)} s)` : ''}`;
  const safe = slot.safeWalBytes === null ? '' : `, ${formatBytes(slot.safeWalBytes)} before invalidation`;
  return `  slot ${slot.slot}  ${slotOwner(slot)}  ${state}  WAL retained ${formatBytes(slot.retainedBytes)}, ` +
    `unconfirmed ${formatBytes(slot.confirmedLagBytes)}, wal_status ${slot.walStatus ?? 'unknown'}${safe}`;
}

/** The slots and publications, one line each, under a count. */
function describeReplication(health: ReplicationHealth): string[] {
  const orphans = orphansOf(health);
  return [
    `replication: ${health.slots.length} slot(s), ${health.publications.length} publication(s); ` +
      `${orphans.slots.length + orphans.publications.length} orphan(s)`,
    ...health.slots.map(describeSlot),
    ...health.publications.map((p) => `  publication ${p.publication}  ${slotOwner(p)}  ${p.tables} table(s)`),
  ];
}

export interface SlotsCommandOptions {
  json?: boolean;
  dropOrphans?: boolean;
  yes?: boolean;
}

/** One line of an answer from standard input (a terminal, or a pipe); '' when it ends first. */
async function answer(prompt: string): Promise<string> {
  const { createInterface } = await import('node:readline/promises');
  const lines = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY === true });
  const closed = new Promise<string>((resolve) => lines.once('close', () => resolve('')));
  try {
    return await Promise.race([lines.question(prompt), closed]);
  } finally {
    lines.close();
  }
}

/**
 * `echodb slots`: the replication slots and publications of EchoDB's mirrors, with the orphans (exit 3 when there
 * are any); `--drop-orphans` drops these after asking (unless `--yes`), and only when PeerDB's Flow API says it
 * has no such mirror (lib/replication-slots.ts dropOrphans).
 */
export async function slots(config: Config, options: SlotsCommandOptions): Promise<Outcome> {
  return withSource(config, async (query, pool): Promise<Outcome> => {
    await usableSchemaVersion(pool);
    const health = await readReplicationHealth(query);
    const orphans = orphansOf(health);
    const count = orphans.slots.length + orphans.publications.length;
    if (!options.dropOrphans) {
      if (options.json) {
        console.log(JSON.stringify({ slots: health.slots.map(slotJson), publications: health.publications.map(publicationJson) }, null, 2));
      } else {
        for (const line of describeReplication(health)) console.log(line);
        if (count > 0) console.log('drop the orphans with `echodb slots --drop-orphans`');
      }
      return count > 0 ? 'found' : 'ok';
    }
    if (count === 0) {
      console.log(options.json ? JSON.stringify({ dropped: [] }) : 'slots: no orphan to drop');
      return 'ok';
    }
    const states = await peerDbStates(config);
    if (states instanceof Error) {
      throw new Error(`cannot ask PeerDB which mirrors exist (${states.message}); nothing dropped: an orphan is dropped only when PeerDB has no mirror of its name`);
    }
    if (!options.json) {
      console.log(`slots: ${count} orphan(s) of mirrors EchoDB dropped:`);
      for (const slot of orphans.slots) console.log(describeSlot(slot));
      for (const p of orphans.publications) console.log(`  publication ${p.publication}  ${slotOwner(p)}  ${p.tables} table(s)`);
    }
    if (!options.yes) {
      const reply = (await answer(`Drop these ${count}? Their WAL is then released for good. [y/N] `)).trim().toLowerCase();
      if (reply !== 'y' && reply !== 'yes') {
        console.log('slots: nothing dropped');
        return 'failure';
      }
    }
    const outcomes = await dropOrphans(query, new Set(states.keys()));
    if (options.json) {
      console.log(JSON.stringify({ dropped: outcomes }, null, 2));
    } else {
      for (const o of outcomes) {
        const held = o.kind === 'slot' ? `; it held ${formatBytes(o.retainedBytes)} of WAL` : '';
        console.log(o.dropped ? `  dropped ${o.kind} ${o.name} (${o.reason}${held})` : `  kept ${o.kind} ${o.name}: ${o.reason}`);
      }
      if (outcomes.some((o) => o.dropped)) console.log('slots: what was dropped is recorded in echodb.dropped_orphans');
    }
    return outcomes.every((o) => o.dropped) ? 'ok' : 'failure';
  });
}
