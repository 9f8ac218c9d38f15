import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import type { Activities } from '../../activities/index.js';
import type { CreateOutcome, EditOutcome } from '../../activities/mirror-activities.js';
import { mirrorWorkflowId, parseSourceTableIdentifier } from '../../lib/workflow-safe/workflow-ids.js';
import { workflowCode } from '../../workers/workflow-code.js';
import type { Difference, DifferenceKind, DiffPass } from '../../lib/row-diff/index.js';
import type { DiffResult, DiffScan } from '../../workflows/diff-model.js';
import { until } from '../support/until.js';
import { mirrorStateQuery, tableEventsSignal, workflowTypes } from '../../workflows/definitions.js';
import type { MirrorOperation, MirrorSettings, MirrorTable, TableCount, TableEvent, TableFacts, TableRef, VerificationResult } from '../../workflows/model.js';

// Workers and workflows log warnings and errors only: the tests check what they record.
Runtime.install({ logger: new DefaultLogger('ERROR') });

/** Settings as the worker would give them, with every wait short. */
export const FAST_SETTINGS: MirrorSettings = {
  coalesceWindowMs: 0,
  onDrop: 'rename',
  verify: { delayMs: 0, attempts: 1, intervalMs: 0, batchSize: 100 },
  retry: { maxRetries: 0, backoffMs: 100, backoffCoefficient: 1 },
  verifyAll: { concurrency: 2 },
  claimWaitMs: 0,
  idleCompletionMs: 500,
};

export const table = (name: string, schema = 'app'): MirrorTable => ({ schema, table: name, source: `${schema}.${name}`, destination: name });

/**
 * The world the mirror workflow acts on, in memory: a source catalog, PeerDB's mirrors, and every call the workflow
 * made. Its activities are the real ones' contracts (activities/index.ts), stubbed; `override` replaces any of them
 * for one test. Runs workflows on the workflows project's Temporal dev server (test/workflows/global-setup.ts).
 */
export class StubWorld {
  readonly catalog = new Map<string, number>();
  readonly mirrors = new Map<string, Set<string>>();
  readonly operations: MirrorOperation[] = [];
  readonly calls: { name: keyof Activities; args: unknown[] }[] = [];
  readonly verifications: VerificationResult[] = [];
  readonly diffs: DiffResult[] = [];
  settings: MirrorSettings = { ...FAST_SETTINGS };
  readonly override: { [K in keyof Activities]?: (...args: Parameters<Activities[K]>) => unknown } = {};
  readonly taskQueue = `workflows-${randomUUID()}`;
  private nextOid = 16_384;

  /** Creates a table in the source catalog; returns its relation. */
  create(...tables: MirrorTable[]): void {
    for (const t of tables) this.catalog.set(t.source, this.nextOid++);
  }

  drop(...tables: MirrorTable[]): void {
    for (const t of tables) this.catalog.delete(t.source);
  }

  /** An event for `t` with a unique id. */
  event(t: MirrorTable, operation: TableEvent['operation'] = 'create', eventId = randomUUID()): TableEvent {
    return { ...t, eventId, operation };
  }

  /** The recorded operations as `operation result tables` lines, tables sorted. */
  operationLines(): string[] {
    return this.operations.map((o) => `${o.operation} ${o.result} ${[...o.tables].sort().join(',')}`);
  }

  /** Waits until the workflow has recorded `count` operations. */
  untilOperations(count: number): Promise<number> {
    return until(() => Promise.resolve(this.operations.length), (n) => n === count);
  }

  untilVerifications(count: number): Promise<number> {
    return until(() => Promise.resolve(this.verifications.length), (n) => n === count);
  }

  callsOf(name: keyof Activities): unknown[][] {
    return this.calls.filter((call) => call.name === name).map((call) => call.args);
  }

  private facts(tables: TableRef[]): TableFacts[] {
    return tables.map(({ schema, table: name }) => {
      const relationOid = this.catalog.get(`${schema}.${name}`) ?? null;
      return { schema, table: name, relationOid, mirrorable: relationOid !== null, ...(relationOid === null && { reason: 'does not exist' }) };
    });
  }

  activities(): Partial<Activities> {
    const stubs = {
      mirrorSettings: () => ({ ...this.settings }),
      describeMirror: (mirror: string) => {
        const held = this.mirrors.get(mirror);
        const tables = [...(held ?? [])].map(parseSourceTableIdentifier).map(({ schema, table: name }) => table(name, schema));
        return { exists: held !== undefined, status: held ? 'STATUS_RUNNING' : null, tables };
      },
      inspectSourceTables: (tables: TableRef[]) => this.facts(tables),
      ensurePeers: () => undefined,
      createMirror: (mirror: string, tables: MirrorTable[]): CreateOutcome => {
        if (this.mirrors.has(mirror)) return { outcome: 'exists', leftOut: [] };
        this.mirrors.set(mirror, new Set(tables.map((t) => t.source)));
        return { outcome: 'created', leftOut: [] };
      },
      editMirror: (mirror: string, add: MirrorTable[], remove: MirrorTable[]): EditOutcome => {
        const held = this.mirrors.get(mirror) ?? new Set();
        for (const t of add) held.add(t.source);
        for (const t of remove) held.delete(t.source);
        this.mirrors.set(mirror, held);
        return { added: add.map((t) => t.source), removed: remove.map((t) => t.source), leftOut: [] };
      },
      dropMirror: (mirror: string) => void this.mirrors.delete(mirror),
      retireDestinationTable: () => undefined,
      claimDestinations: (_mirror: string, tables: MirrorTable[]) => ({ claimed: tables, collisions: [] }),
      releaseDestinations: () => undefined,
      recordUnmirrored: () => undefined,
      giveReplicaIdentity: () => [],
      recordMirrorOperation: (operation: MirrorOperation) => void this.operations.push(operation),
      countRows: () => ({ postgres: 1, clickhouse: 1 }),
      countTables: (tables: MirrorTable[]): TableCount[] => tables.map(() => ({ counts: { postgres: 1, clickhouse: 1 } })),
      recordVerification: (result: VerificationResult) => void this.verifications.push(result),
      recordVerifications: (results: VerificationResult[]) => void this.verifications.push(...results),
      diffSettings: () => ({ diff: { settleDelayMs: 100, rechecks: 2, examples: 5 }, retry: this.settings.retry }),
      diffScan: (): DiffScan => ({ kind: 'rows', pass: diffPass({}), excluded: [], drift: { onlyInPostgres: [], onlyInClickHouse: [] } }),
      diffRecheck: () => diffPass({}),
      diffExamples: (_table: MirrorTable, pass: DiffPass): Difference[] => pass.tracked.map(({ key, kind }) => ({ key: { id: key }, kind, columns: [] })),
      recordDiff: (result: DiffResult) => void this.diffs.push(result),
    };
    // An override is looked up at each call, so that a test can change an activity while its worker runs.
    const logged = Object.entries(stubs).map(([name, stub]) => [
      name,
      (...args: unknown[]) => {
        this.calls.push({ name: name as keyof Activities, args });
        const run = (this.override[name as keyof Activities] ?? stub) as (...a: unknown[]) => unknown;
        // As a real activity's, a throw becomes a rejection.
        return Promise.resolve().then(() => run(...args));
      },
    ]);
    return Object.fromEntries(logged) as Partial<Activities>;
  }

  /** Runs a worker with these activities for as long as `use` takes. */
  async run<T>(use: (client: Client) => Promise<T>): Promise<T> {
    const env = await TestWorkflowEnvironment.createFromExistingServer(inject('temporal'));
    try {
      const worker = await Worker.create({
        connection: env.nativeConnection,
        namespace: env.namespace,
        taskQueue: this.taskQueue,
        activities: this.activities(),
        ...(await workflowCode()),
      });
      return await worker.runUntil(use(env.client));
    } finally {
      await env.teardown();
    }
  }

  /** Sends events to a mirror's workflow as the listener does (signal-with-start on its deterministic ID). */
  async send(client: Client, mirror: string, events: TableEvent[]) {
    return client.workflow.signalWithStart(workflowTypes.mirror, {
      workflowId: mirrorWorkflowId(mirror),
      taskQueue: this.taskQueue,
      args: [{ mirror }],
      signal: tableEventsSignal,
      signalArgs: [events],
    });
  }

  state(client: Client, mirror: string) {
    return client.workflow.getHandle(mirrorWorkflowId(mirror)).query(mirrorStateQuery);
  }
}

/** A mirror name no other test uses (workflow IDs are kept on the shared dev server). */
export const uniqueMirror = (label: string) => `${label}_${randomUUID().slice(0, 8)}`;

/** A diff pass that found these rows different (key -> kind), as diffScan and diffRecheck answer. */
export function diffPass(rows: Record<string, DifferenceKind>): DiffPass {
  const tracked = Object.entries(rows).map(([key, kind]) => ({ key, kind }));
  const totals = { missing: 0, extra: 0, changed: 0 };
  for (const { kind } of tracked) totals[kind]++;
  return { totals, tracked, untracked: 0, ranges: tracked.length > 0 ? [{ from: '0', to: '100' }] : [], segments: 4, rowsCovered: 100, position: 'key' };
}
