import { Context } from '@temporalio/activity';
import { qualifiedTable } from '../lib/clickhouse-sql.js';
import { droppedTableName, parseSourceTableIdentifier, peerDbNameProblem } from '../lib/naming.js';
import { MirrorFailed, MirrorNotFound, PeerDbUnavailable } from '../lib/peerdb/errors.js';
import * as peers from '../lib/peerdb/peers.js';
import type { FlowStatus, MirrorStatus, TableMapping } from '../lib/peerdb/types.js';
import type {
  MirrorDescription,
  MirrorOperation,
  MirrorSettings,
  MirrorTable,
  TableFacts,
  TableRef,
} from '../workflows/model.js';
import type { ActivityDependencies } from './index.js';
import { sourceQueries } from './source-database.js';
import { withBreakerAwareRetries } from './temporal-errors.js';

/** How often a waiting activity asks PeerDB for the mirror's state (and heartbeats). */
const POLL_MS = 250;
/**
 * How often a PeerDB activity heartbeats while it runs, whatever it waits for (a PeerDB call may take up to
 * PEERDB_REQUEST_TIMEOUT): the workflows' heartbeat timeout only has to outlast this, so the activities of a
 * worker that died are handed to another within seconds.
 */
const HEARTBEAT_EVERY_MS = 1000;
/** The longest pause between two tries of a PeerDB call that failed for an outage (503, timeout, refused). */
const MAX_OUTAGE_PAUSE_MS = 5000;

const toMapping = (table: MirrorTable): TableMapping => ({
  sourceTableIdentifier: table.source,
  destinationTableIdentifier: table.destination,
  exclude: [],
  engine: 'CH_ENGINE_REPLACING_MERGE_TREE',
});

/** The last details each running activity heartbeated, which the interval heartbeat repeats. */
const lastDetails = new WeakMap<Context, unknown>();

/** Heartbeats the current activity with these details, and keeps them for the interval heartbeat. */
function heartbeat(details: unknown): void {
  const context = Context.current();
  lastDetails.set(context, details);
  context.heartbeat(details);
}

const mappingsOf = (status: MirrorStatus): TableMapping[] => status.cdcStatus?.config?.tableMappings ?? [];
const sourcesOf = (status: MirrorStatus): string[] => mappingsOf(status).map((m) => m.sourceTableIdentifier);

export function createMirrorActivities(deps: ActivityDependencies) {
  const { config, clickhouse, peerdb } = deps;
  const querySource = sourceQueries(deps);

  /**
   * Runs a PeerDB activity's body (breaker-aware), heartbeating every HEARTBEAT_EVERY_MS until it ends, with the
   * last details the body heartbeated (at first, the previous attempt's), so the Temporal UI keeps showing what
   * it waits for.
   */
  async function heartbeating<T>(work: () => Promise<T>): Promise<T> {
    const context = Context.current();
    if (context.info.heartbeatDetails !== undefined) lastDetails.set(context, context.info.heartbeatDetails);
    const timer = setInterval(() => context.heartbeat(lastDetails.get(context)), HEARTBEAT_EVERY_MS);
    try {
      return await withBreakerAwareRetries(work);
    } finally {
      clearInterval(timer);
    }
  }

  /** Rethrows anything but an outage; an outage is heartbeated, so the Temporal UI shows why the activity waits. */
  function noteOutage(error: unknown): void {
    if (!(error instanceof PeerDbUnavailable)) throw error;
    heartbeat(`PeerDB unavailable: ${error.message}`);
  }

  /**
   * One PeerDB call, tried again in place (heartbeating, backing off to MAX_OUTAGE_PAUSE_MS) while PeerDB answers
   * with an outage. A long wait for a mirror's state must not be thrown away, and a half-done edit must not wait
   * out Temporal's retry backoff, because one poll among hundreds met a 503. A lasting outage opens the breaker,
   * whose CircuitOpen fails the attempt (withBreakerAwareRetries schedules the next one); other errors fail it too.
   */
  async function persistently<T>(call: () => Promise<T>): Promise<T> {
    for (let pause = POLL_MS; ; pause = Math.min(pause * 2, MAX_OUTAGE_PAUSE_MS)) {
      try {
        return await call();
      } catch (error) {
        noteOutage(error);
        await Context.current().sleep(pause);
      }
    }
  }

  async function tableExists(name: string): Promise<boolean> {
    const result = await clickhouse.query({
      query: `EXISTS TABLE ${qualifiedTable(config.clickhouse.database, name)}`,
      format: 'JSONEachRow',
    });
    const [row] = await result.json<{ result: number | string }>();
    return Number(row?.result) === 1;
  }

  /** Sends one state change; false (heartbeating) when PeerDB answered with an outage, so the caller looks again. */
  async function sentOrOutage(call: () => Promise<void>): Promise<boolean> {
    try {
      await call();
      return true;
    } catch (error) {
      noteOutage(error);
      return false;
    }
  }

  /**
   * Polls the mirror until `done` says so; fails on STATUS_FAILED unless the wait is for a drop (a failed mirror
   * is dropped like any other). Heartbeats, so cancellation reaches it.
   */
  async function waitForMirror(mirror: string, what: string, done: (status: MirrorStatus | null) => boolean, failedIsFinal = true) {
    for (;;) {
      const status = await persistently(() => peerdb.mirrorStatus(mirror));
      if (done(status)) return status;
      if (failedIsFinal && status?.currentFlowState === 'STATUS_FAILED') throw new MirrorFailed(`mirror ${mirror} failed while ${what}`);
      heartbeat(status?.currentFlowState ?? 'gone');
      await Context.current().sleep(POLL_MS);
    }
  }

  const isState = (...states: FlowStatus[]) => (status: MirrorStatus | null) =>
    status !== null && states.includes(status.currentFlowState);

  return {
    /** The settings mirror and verify-all workflows read at the start of each run. */
    mirrorSettings(): Promise<MirrorSettings> {
      return Promise.resolve({
        coalesceWindowMs: config.mirror.coalesceWindowMs,
        onDrop: config.mirror.destinationOnDrop,
        verify: { ...config.verify },
        retry: { ...config.retry },
        verifyAll: { concurrency: config.consistencyChecker.concurrency },
      });
    },

    /** Creates or updates the PostgreSQL and ClickHouse peers the mirrors read from and write to. */
    async ensurePeers(): Promise<void> {
      await heartbeating(() => persistently(() => peers.ensurePeers(peerdb, config)));
    },

    /** What the source catalog says about these tables now. */
    async inspectSourceTables(tables: TableRef[]): Promise<TableFacts[]> {
      const { rows } = await querySource<{ i: number; relation_oid: string | null; relkind: string | null; relpersistence: string | null; relispartition: boolean | null }>(
        `SELECT t.i, c.oid::int8 AS relation_oid, c.relkind, c.relpersistence, c.relispartition
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(schema_name, table_name, i)
         LEFT JOIN pg_namespace n ON n.nspname = t.schema_name
         LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name
         ORDER BY t.i`,
        [tables.map((t) => t.schema), tables.map((t) => t.table)],
      );
      return tables.map((table, index) => {
        const row = rows[index];
        const relationOid = row?.relation_oid == null ? null : Number(row.relation_oid);
        const reason =
          relationOid === null ? 'does not exist'
          : !['r', 'p'].includes(row!.relkind ?? '') ? `is not a table (relkind ${row!.relkind})`
          : row!.relispartition ? 'is a partition: its parent table is mirrored'
          : row!.relpersistence === 't' ? 'is a temporary table'
          : row!.relpersistence === 'u' ? 'is unlogged: logical replication cannot follow its changes'
          : peerDbNameProblem(table);
        return { ...table, relationOid, mirrorable: reason === undefined, ...(reason && { reason }) };
      });
    },

    async describeMirror(mirror: string): Promise<MirrorDescription> {
      const status = await withBreakerAwareRetries(() => peerdb.mirrorStatus(mirror));
      return status === null
        ? { exists: false, status: null, tables: [] }
        : {
            exists: true,
            status: status.currentFlowState,
            tables: mappingsOf(status).map((m) => ({
              ...parseSourceTableIdentifier(m.sourceTableIdentifier),
              source: m.sourceTableIdentifier,
              destination: m.destinationTableIdentifier,
            })),
          };
    },

    /** Creates the mirror with these tables (initial snapshot included) and waits until it runs. */
    async createMirror(mirror: string, tables: MirrorTable[]): Promise<'created' | 'exists'> {
      return heartbeating(async () => {
        const outcome = await persistently(() => peerdb.createCdcMirror({
          flowJobName: mirror,
          sourceName: config.peerdb.sourcePeerName,
          destinationName: config.peerdb.targetPeerName,
          tableMappings: tables.map(toMapping),
          doInitialSnapshot: true,
        }));
        await waitForMirror(mirror, 'being created', isState('STATUS_RUNNING'));
        return outcome;
      });
    },

    /**
     * Adds and removes tables in one pause-edit-resume, PeerDB's own sequence, and waits until the mirror runs
     * again with them (added tables snapshotted). Converges: whatever is already as asked is left alone, so a
     * retry after a crash in the middle continues where it stopped.
     */
    async editMirror(mirror: string, add: MirrorTable[], remove: MirrorTable[]): Promise<{ added: string[]; removed: string[] }> {
      return heartbeating(async () => {
        const applied = { added: [] as string[], removed: [] as string[] };
        for (;;) {
          const status = await persistently(() => peerdb.mirrorStatus(mirror));
          if (status === null) throw new MirrorNotFound(`mirror ${mirror} does not exist`);
          const current = new Set(sourcesOf(status));
          const toAdd = add.filter((t) => !current.has(t.source));
          const toRemove = remove.filter((t) => current.has(t.source));
          if (toAdd.length === 0 && toRemove.length === 0 && status.currentFlowState === 'STATUS_RUNNING') {
            return applied;
          }
          switch (status.currentFlowState) {
            case 'STATUS_RUNNING':
              if (toAdd.length > 0 || toRemove.length > 0) await sentOrOutage(() => peerdb.pauseMirror(mirror));
              break;
            case 'STATUS_PAUSED':
              // Not repeated in place: a resume that timed out may have been applied, and PeerDB would apply its
              // update twice. The next status shows what is still to do.
              if (await sentOrOutage(() => peerdb.resumeMirror(mirror, { additionalTables: toAdd.map(toMapping), removedTables: toRemove.map(toMapping) }))) {
                applied.added.push(...toAdd.map((t) => t.source));
                applied.removed.push(...toRemove.map((t) => t.source));
              }
              break;
            case 'STATUS_FAILED':
            case 'STATUS_TERMINATING':
            case 'STATUS_TERMINATED':
            case 'STATUS_COMPLETED':
              throw new MirrorFailed(`mirror ${mirror} is ${status.currentFlowState}; it cannot be edited`);
            default:
              // pausing, setting up, snapshotting or modifying: wait for it
              break;
          }
          heartbeat(status.currentFlowState);
          await Context.current().sleep(POLL_MS);
        }
      });
    },

    /** Drops the mirror and waits until PeerDB no longer knows it. ClickHouse tables stay. */
    async dropMirror(mirror: string): Promise<void> {
      await heartbeating(async () => {
        if ((await persistently(() => peerdb.dropMirror(mirror))) === 'gone') return;
        await waitForMirror(mirror, 'being dropped', (status) => status === null, false);
      });
    },

    /**
     * Applies DESTINATION_ON_DROP to a table that left its mirror: keep it, rename it aside (the default: data
     * kept, and a re-created table can snapshot into a fresh one), or drop it. `at` comes from the workflow, so
     * a retry renames to the same name. Returns the table's new name, if it moved.
     */
    async retireDestinationTable(destination: string, policy: MirrorSettings['onDrop'], at: string): Promise<string | null> {
      const database = config.clickhouse.database;
      const table = qualifiedTable(database, destination);
      if (policy === 'keep') return null;
      if (policy === 'drop') {
        await clickhouse.command({ query: `DROP TABLE IF EXISTS ${table}` });
        return null;
      }
      if (!(await tableExists(destination))) return null;
      // The first free name from `at` on: a table can leave twice within a second (a rebuild right after an add).
      for (let second = 0; ; second++) {
        const renamed = droppedTableName(destination, new Date(Date.parse(at) + second * 1000));
        if (await tableExists(renamed)) continue;
        await clickhouse.command({ query: `RENAME TABLE ${table} TO ${qualifiedTable(database, renamed)}` });
        return renamed;
      }
    },

    /**
     * Claims each table's ClickHouse destination for it. A destination another source table already holds is a
     * collision: that table is returned apart and must not be added.
     */
    async claimDestinations(mirror: string, tables: MirrorTable[]): Promise<{ claimed: MirrorTable[]; collisions: { table: MirrorTable; heldBy: string }[] }> {
      const { rows } = await querySource<{ destination: string; source: string }>(
        `WITH wanted AS (SELECT * FROM unnest($1::text[], $2::text[]) AS w(destination, source)),
              inserted AS (
                INSERT INTO echodb.destination_claims (destination, source, mirror)
                SELECT destination, source, $3 FROM wanted
                ON CONFLICT (destination) DO NOTHING
                RETURNING destination, source)
         SELECT destination, source FROM inserted
         UNION ALL
         SELECT c.destination, c.source FROM echodb.destination_claims c JOIN wanted USING (destination)`,
        [tables.map((t) => t.destination), tables.map((t) => t.source), mirror],
      );
      const holder = new Map(rows.map((row) => [row.destination, row.source]));
      const claimed = tables.filter((t) => holder.get(t.destination) === t.source);
      const collisions = tables
        .filter((t) => holder.get(t.destination) !== t.source)
        .map((table) => ({ table, heldBy: holder.get(table.destination) ?? 'unknown' }));
      return { claimed, collisions };
    },

    /** Gives up the claims of tables that left their mirror. */
    async releaseDestinations(tables: MirrorTable[]): Promise<void> {
      await querySource(
        `DELETE FROM echodb.destination_claims c
         USING unnest($1::text[], $2::text[]) AS r(destination, source)
         WHERE c.destination = r.destination AND c.source = r.source`,
        [tables.map((t) => t.destination), tables.map((t) => t.source)],
      );
    },

    /** Records what a mirror workflow did (or gave up on), once per operation key. */
    async recordMirrorOperation(operation: MirrorOperation): Promise<void> {
      await querySource(
        `INSERT INTO echodb.mirror_operations
           (operation_key, mirror, operation, tables, result, error, workflow_id, event_ids)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint[])
         ON CONFLICT (operation_key) DO NOTHING`,
        [
          operation.key,
          operation.mirror,
          operation.operation,
          operation.tables,
          operation.result,
          operation.error ?? null,
          operation.workflowId,
          // Outbox ids only: reconcile's synthetic events (`reconcile:<run>:<n>`) have no row.
          operation.eventIds.map((id) => id.split(':')[0]).filter((id) => /^\d+$/.test(id ?? '')),
        ],
      );
    },
  };
}
