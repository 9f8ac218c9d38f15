import { Context } from '@temporalio/activity';
import { dropTable, existsTable, renameTable } from '../lib/clickhouse-sql.js';
import { destinationNameLimit, droppedTableName } from '../lib/naming.js';
import { parseSourceTableIdentifier } from '../lib/workflow-safe/workflow-ids.js';
import { MirrorFailed, MirrorNotFound, MirrorStalled, MirrorWedged, PeerDbError } from '../lib/workflow-safe/peerdb-errors.js';
import * as peers from '../lib/peerdb/peers.js';
import type { FlowStatus, MirrorStatus, TableMapping } from '../lib/peerdb/types.js';
import type {
  DestinationCollision,
  LeftOut,
  MirrorDescription,
  MirrorOperation,
  MirrorSettings,
  MirrorTable,
  TableFacts,
  TableRef,
} from '../workflows/model.js';
import type { ActivityDependencies } from './index.js';
import { MirrorWait, type WaitSubject } from './mirror-wait.js';
import { heartbeat, heartbeating, MAX_POLL_MS, persistently, POLL_MS, sentOrTransient } from './peerdb-calls.js';
import { sourceQueries } from './source-database.js';
import { prepareTables, tableFacts } from './table-readiness.js';
import { withBreakerAwareRetries } from './temporal-errors.js';

/**
 * After sending a table change to a paused mirror, how long EchoDB waits for PeerDB to read it before it sends it
 * again: PeerDB answers before its workflow reads the signal, and sending it twice is harmless (a repeated
 * addition overlaps and is dropped whole, cdc_flow.go processTableAdditions), but pointless while the first is
 * on its way.
 */
const UPDATE_READ_WAIT_MS = 30_000;
/** How often a wait in SNAPSHOT reads the initial load's progress (a heavy status call). */
const PROGRESS_EVERY_MS = 30_000;
/** How long a mirror workflow with no mirror left waits for new events before it completes. */
const MIRROR_IDLE_COMPLETION_MS = 60_000;

const toMapping = (table: MirrorTable): TableMapping => ({
  sourceTableIdentifier: table.source,
  destinationTableIdentifier: table.destination,
  exclude: [],
  engine: 'CH_ENGINE_REPLACING_MERGE_TREE',
});

const mappingsOf = (status: MirrorStatus): TableMapping[] => status.cdcStatus?.config?.tableMappings ?? [];
const sourcesOf = (status: MirrorStatus): string[] => mappingsOf(status).map((m) => m.sourceTableIdentifier);
/** Rows the mirror's initial loads copied so far. */
/** `schema.table why; ...` for tables left out of a change. */
const describeLeftOut = (tables: LeftOut[]): string => tables.map((t) => `${t.source} ${t.reason}`).join('; ');
const snapshotRows = (status: MirrorStatus): number =>
  (status.cdcStatus?.snapshotStatus?.clones ?? []).reduce((sum, clone) => sum + Number(clone.numRowsSynced), 0);

/** What the workflow says about the operation, for the wait's record and the logs. */
export interface OperationContext {
  eventIds?: string[];
}

export interface CreateOutcome {
  /** `none`: every table was left out, nothing was created. */
  outcome: 'created' | 'exists' | 'none';
  leftOut: LeftOut[];
}

export interface EditOutcome {
  added: string[];
  removed: string[];
  /** Tables of `add` that did not go in, and why: gone, or without a usable replica identity. */
  leftOut: LeftOut[];
}

export function createMirrorActivities(deps: ActivityDependencies) {
  const { config, clickhouse, peerdb } = deps;
  const querySource = sourceQueries(deps);

  async function tableExists(name: string): Promise<boolean> {
    const result = await clickhouse.query({
      query: existsTable(config.clickhouse.database, name),
      format: 'JSONEachRow',
    });
    const [row] = await result.json<{ result: number | string }>();
    return Number(row?.result) === 1;
  }

  const waitFor = (subject: WaitSubject) => new MirrorWait({ config, peerdb, query: querySource }, subject);

  /** Runs `body` with a wait on the mirror, ending the wait's record however the body ends. */
  async function waiting<T>(subject: WaitSubject, body: (wait: MirrorWait) => Promise<T>): Promise<T> {
    const wait = waitFor(subject);
    try {
      const result = await body(wait);
      await wait.end();
      return result;
    } catch (error) {
      await wait.end(error);
      throw error;
    }
  }

  /**
   * Polls the mirror's state lightly (no includeFlowInfo) until it is no longer `from`, or `stop` says to look
   * again; the state last seen. Past the stall timeout it stops too, for the caller to report the stall.
   */
  async function settle(mirror: string, from: FlowStatus | null, wait: MirrorWait, stop: () => boolean = () => false) {
    for (let pause = POLL_MS; ; pause = Math.min(Math.round(pause * 1.5), MAX_POLL_MS)) {
      await Context.current().sleep(pause);
      const state = await persistently(() => peerdb.mirrorState(mirror), wait);
      if (state !== from || stop() || wait.stalled) return state;
      if (state !== null) await wait.observe(state);
    }
  }

  /** The initial load's progress, read now and then (a heavy call) while a wait is in SNAPSHOT. */
  function progressReader(mirror: string) {
    let readAt = 0;
    return async (state: FlowStatus): Promise<number | undefined> => {
      if (state !== 'STATUS_SNAPSHOT' || Date.now() - readAt < PROGRESS_EVERY_MS) return undefined;
      readAt = Date.now();
      const status = await persistently(() => peerdb.mirrorStatus(mirror));
      return status === null ? undefined : snapshotRows(status);
    };
  }

  /** The stall, reported where an operator looks; then, as PeerDB answers but the mirror does not move, the end. */
  async function stalledError(wait: MirrorWait): Promise<MirrorStalled> {
    return new MirrorStalled(await wait.reportStall());
  }

  /**
   * PeerDB keeps the mirror in SNAPSHOT for ever when a table it adds no longer exists: it retries ALTER
   * PUBLICATION ... ADD TABLE without limit (flow/workflows/cdc_flow.go processTableAdditions, AddTablesToPublication
   * in flow/connectors/postgres/postgres_source.go), and the addition's setup retries its table check the same way.
   * Cancelling the addition (CancelTableAddition) restarts the mirror RUNNING with the tables it had plus the added
   * ones already snapshotted; EchoDB then adds the others again. Recorded as a cancel_addition operation.
   */
  async function cancelAddition(wait: MirrorWait, status: MirrorStatus, gone: LeftOut[], attempt: number): Promise<void> {
    const { mirror } = wait.subject;
    const subject = wait.subject;
    const { info } = Context.current();
    const key = `echodb-${info.workflowExecution?.runId}-${info.activityId}-${info.attempt}-${attempt}`;
    const why = describeLeftOut(gone);
    Context.current().log.warn('cancelling a table addition PeerDB cannot finish', {
      mirror,
      tables: gone.map((table) => table.source),
      event_ids: subject.eventIds,
      reason: why,
    });
    heartbeat(`cancelling the table addition of ${mirror}: ${why}`);
    await persistently(async () => {
      try {
        await peerdb.cancelTableAddition(mirror, mappingsOf(status), key);
      } catch (error) {
        // The addition finished, or this cancellation did (its answer was lost): the next status says what is left.
        if (!(error instanceof PeerDbError) || !/cannot cancel table addition|cancel table addition workflow/.test(error.message)) throw error;
      }
    }, wait);
    await querySource(
      `INSERT INTO echodb.mirror_operations (operation_key, mirror, operation, tables, result, error, workflow_id, event_ids)
       VALUES ($1, $2, 'cancel_addition', $3, 'succeeded', $4, $5, $6::bigint[])
       ON CONFLICT (operation_key) DO NOTHING`,
      [key, mirror, gone.map((table) => table.source), why, info.workflowExecution?.workflowId ?? '', outboxIds(subject.eventIds)],
    );
  }

  return {
    /** The settings mirror and verify-all workflows read at the start of each run. */
    mirrorSettings(): Promise<MirrorSettings> {
      return Promise.resolve({
        coalesceWindowMs: config.mirror.coalesceWindowMs,
        onDrop: config.mirror.destinationOnDrop,
        verify: { ...config.verify },
        retry: { ...config.retry },
        verifyAll: { concurrency: config.consistencyChecker.concurrency },
        claimWaitMs: config.mirror.claimWaitMs,
        idleCompletionMs: MIRROR_IDLE_COMPLETION_MS,
      });
    },

    /**
     * Creates or updates the PostgreSQL and ClickHouse peers the mirrors read from and write to. PeerDB connects
     * to each to validate it: one it cannot reach is waited for like an outage; one it refuses (a wrong password,
     * a database that does not exist) is a PeerDbInvalidRequest.
     */
    async ensurePeers(): Promise<void> {
      await heartbeating(() => persistently(() => peers.ensurePeers(peerdb, config)));
    },

    /** What the source catalog says about these tables now (replica identity included). */
    inspectSourceTables(tables: TableRef[]): Promise<TableFacts[]> {
      return tableFacts(querySource, config, tables);
    },

    /**
     * Gives mirrored tables that lost their key REPLICA IDENTITY FULL (MISSING_REPLICA_IDENTITY=set-full); returns
     * those it could not fix, which must leave their mirror.
     */
    async giveReplicaIdentity(tables: MirrorTable[]): Promise<LeftOut[]> {
      return (await prepareTables(querySource, config, tables)).leftOut;
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

    /**
     * Creates the mirror with these tables (initial snapshot included) and waits until it runs. Tables gone or
     * without a usable replica identity by now are left out (under set-full, those without a key get REPLICA
     * IDENTITY FULL first). A previous mirror of the name that PeerDB is still dropping is waited for. A mirror
     * that stays in SETUP or SNAPSHOT while a table has since gone or lost its key is MirrorWedged (PeerDB retries
     * its table check for ever, and creating the publication for hours; a snapshot that gets as far as a gone
     * table fails anyway); one that makes no progress for MIRROR_STALL_TIMEOUT is MirrorStalled.
     */
    async createMirror(mirror: string, tables: MirrorTable[], context: OperationContext = {}): Promise<CreateOutcome> {
      return heartbeating(async () => {
        const { ready, leftOut } = await prepareTables(querySource, config, tables);
        if (ready.length === 0) {
          // An earlier attempt may have created the mirror before its tables went (its answer lost, or the worker
          // lost): PeerDB would hold it, with nothing EchoDB tracks in it, for ever. Wedged: dropped by the caller.
          if (Context.current().info.attempt > 1 && (await peerdb.mirrorState(mirror)) !== null) {
            throw new MirrorWedged(
              `mirror ${mirror} was created by an earlier attempt, and none of its tables can be mirrored now: ` +
                describeLeftOut(leftOut),
            );
          }
          return { outcome: 'none', leftOut };
        }
        const subject: WaitSubject = { mirror, operation: 'create', tables: ready.map((t) => t.source), eventIds: context.eventIds ?? [] };
        return waiting(subject, async (wait) => {
          const create = () =>
            peerdb.createCdcMirror({
              flowJobName: mirror,
              sourceName: config.peerdb.sourcePeerName,
              destinationName: config.peerdb.targetPeerName,
              tableMappings: ready.map(toMapping),
              doInitialSnapshot: true,
            });
          let outcome: 'created' | 'exists' | 'dropping' = await persistently(create, wait);
          while (outcome === 'dropping') {
            // PeerDB's catalog no longer has the previous mirror, its workflow is still ending (handler.go CreateCDCFlow).
            await wait.outage(`the previous mirror ${mirror} is still being dropped in PeerDB`);
            if (wait.stalled) throw await stalledError(wait);
            await Context.current().sleep(POLL_MS);
            outcome = await persistently(create, wait);
          }
          const progress = progressReader(mirror);
          let state = await persistently(() => peerdb.mirrorState(mirror), wait);
          for (;;) {
            if (state === 'STATUS_RUNNING') return { outcome, leftOut };
            if (state === null) throw new MirrorNotFound(`mirror ${mirror} was dropped while it was being created`);
            if (state === 'STATUS_FAILED') throw new MirrorFailed(`mirror ${mirror} failed while being created`);
            await wait.observe(state, await progress(state));
            if ((state === 'STATUS_SETUP' || state === 'STATUS_SNAPSHOT') && wait.checkDue()) {
              wait.checked();
              const culprits = (await prepareTables(querySource, config, ready)).leftOut;
              if (culprits.length > 0) {
                throw new MirrorWedged(
                  `mirror ${mirror} stays ${state}: ${describeLeftOut(culprits)} ` +
                    `(PeerDB retries ${state === 'STATUS_SETUP' ? 'its table check for ever' : 'creating the publication 20 times, a minute apart and more'})`,
                );
              }
            }
            if (wait.stalled) throw await stalledError(wait);
            state = await settle(mirror, state, wait, () => wait.checkDue());
          }
        });
      });
    },

    /**
     * Adds and removes tables in one pause-edit-resume, PeerDB's own sequence, and waits until the mirror runs
     * again with them (added tables snapshotted). Converges: whatever is already as asked is left alone, so a retry
     * after a crash in the middle continues where it stopped. The change goes to the paused mirror as one signal,
     * sent again only if PeerDB has not read it after UPDATE_READ_WAIT_MS; each table is counted once. Tables gone
     * or without a usable replica identity by the time the change is sent are left out; an addition PeerDB cannot
     * finish (a table dropped after it was sent) is cancelled and the other tables added again.
     */
    async editMirror(mirror: string, add: MirrorTable[], remove: MirrorTable[], context: OperationContext = {}): Promise<EditOutcome> {
      return heartbeating(async () => {
        const leftOut = new Map<string, string>();
        /**
         * What the mirror holds at the end decides, not what this attempt sent: an earlier attempt (a worker lost
         * mid-edit) may have added a table, and a cancelled addition keeps the tables whose load had completed.
         */
        const outcome = (current: Set<string>): EditOutcome => ({
          added: add.filter((t) => current.has(t.source)).map((t) => t.source),
          removed: remove.filter((t) => !current.has(t.source)).map((t) => t.source),
          leftOut: [...leftOut].filter(([source]) => !current.has(source)).map(([source, reason]) => ({ source, reason })),
        });
        const subject: WaitSubject = {
          mirror,
          operation: add.length > 0 ? 'add_tables' : 'remove_tables',
          tables: [...add, ...remove].map((t) => t.source),
          eventIds: context.eventIds ?? [],
        };
        const adding = new Set(add.map((t) => t.source));
        return waiting(subject, async (wait) => {
          /** The pause or change last sent, and in which state: PeerDB reads it a workflow task later. */
          let sent: { in: FlowStatus; at: number } | undefined;
          const unread = (state: FlowStatus) => sent?.in === state && Date.now() - sent.at < UPDATE_READ_WAIT_MS;
          let cancellations = 0;
          for (;;) {
            const status = await persistently(() => peerdb.mirrorStatus(mirror), wait);
            if (status === null) throw new MirrorNotFound(`mirror ${mirror} does not exist`);
            const state = status.currentFlowState;
            const current = new Set(sourcesOf(status));
            const toAdd = add.filter((t) => !current.has(t.source) && !leftOut.has(t.source));
            const toRemove = remove.filter((t) => current.has(t.source));
            if (toAdd.length === 0 && toRemove.length === 0 && state === 'STATUS_RUNNING') return outcome(current);
            await wait.observe(state, state === 'STATUS_SNAPSHOT' ? snapshotRows(status) : undefined);
            switch (state) {
              case 'STATUS_RUNNING': {
                // Not yet paused for this edit, or PeerDB resumed without the change (lost or refused): pause.
                if (unread(state)) break;
                // Set REPLICA IDENTITY FULL (a DDL that may wait for a lock) before the pause, not during it.
                const prepared = await prepareTables(querySource, config, toAdd);
                for (const table of prepared.leftOut) leftOut.set(table.source, table.reason);
                if (prepared.ready.length === 0 && toRemove.length === 0) break;
                if (await sentOrTransient(() => peerdb.pauseMirror(mirror), wait)) sent = { in: state, at: Date.now() };
                break;
              }
              case 'STATUS_PAUSED': {
                if (unread(state)) break;
                const prepared = await prepareTables(querySource, config, toAdd);
                for (const table of prepared.leftOut) leftOut.set(table.source, table.reason);
                if (prepared.ready.length === 0 && toRemove.length === 0) {
                  await sentOrTransient(() => peerdb.resumeMirror(mirror), wait);
                  break;
                }
                const update = { additionalTables: prepared.ready.map(toMapping), removedTables: toRemove.map(toMapping) };
                if (await sentOrTransient(() => peerdb.updatePausedMirror(mirror, update), wait)) sent = { in: state, at: Date.now() };
                break;
              }
              case 'STATUS_SNAPSHOT': {
                if (!wait.checkDue()) break;
                wait.checked();
                const pending = mappingsOf(status)
                  .filter((m) => adding.has(m.sourceTableIdentifier))
                  .map((m) => ({ ...parseSourceTableIdentifier(m.sourceTableIdentifier), source: m.sourceTableIdentifier }));
                const facts = await tableFacts(querySource, config, pending);
                const gone = pending
                  .filter((_, i) => facts[i]!.relationOid === null)
                  .map((t) => ({ source: t.source, reason: 'was dropped while PeerDB was adding it' }));
                if (gone.length === 0) break;
                await cancelAddition(wait, status, gone, ++cancellations);
                for (const table of gone) leftOut.set(table.source, table.reason);
                sent = undefined;
                continue;
              }
              case 'STATUS_FAILED':
              case 'STATUS_TERMINATING':
              case 'STATUS_TERMINATED':
              case 'STATUS_COMPLETED':
                throw new MirrorFailed(`mirror ${mirror} is ${state}; it cannot be edited`);
              default:
                // pausing, setting up or modifying: wait for it
                break;
            }
            if (wait.stalled) throw await stalledError(wait);
            // Light polls until the state moves on, or: in RUNNING or PAUSED, until nothing EchoDB sent there is on
            // its way (a send that failed is tried again at once, one PeerDB did not read after a while again); in
            // SNAPSHOT, until a look at the tables is due.
            await settle(mirror, state, wait, () =>
              state === 'STATUS_RUNNING' || state === 'STATUS_PAUSED' ? !unread(state) : state === 'STATUS_SNAPSHOT' && wait.checkDue(),
            );
          }
        });
      });
    },

    /**
     * Drops the mirror and waits until PeerDB no longer knows it. ClickHouse tables stay. A running mirror drops
     * asynchronously; a failed one within the request (PEERDB_DROP_TIMEOUT), which is not re-sent while PeerDB
     * may still be at it.
     */
    async dropMirror(mirror: string, context: OperationContext = {}): Promise<void> {
      await heartbeating(() =>
        waiting({ mirror, operation: 'drop', tables: [], eventIds: context.eventIds ?? [] }, async (wait) => {
          /** The state the drop was last sent in, and when: PeerDB acts on it a workflow task later. */
          let sent: { in: FlowStatus; at: number } | undefined;
          const unread = (state: FlowStatus) => sent?.in === state && Date.now() - sent.at < UPDATE_READ_WAIT_MS;
          let state = await persistently(() => peerdb.mirrorState(mirror), wait);
          while (state !== null) {
            await wait.observe(state);
            if (state !== 'STATUS_TERMINATING' && !unread(state)) {
              if (state === 'STATUS_FAILED' || state === 'STATUS_COMPLETED') {
                heartbeat(`drop ${mirror}: PeerDB drops a ${state} mirror within the request, which can take minutes`);
              }
              let gone = false;
              const from = state;
              const ok = await sentOrTransient(async () => {
                gone = (await peerdb.dropMirror(mirror)) === 'gone';
              }, wait);
              if (ok && gone) return;
              if (ok) sent = { in: from, at: Date.now() };
            }
            if (wait.stalled) throw await stalledError(wait);
            const from = state;
            state = await settle(mirror, from, wait, () => from !== 'STATUS_TERMINATING' && !unread(from));
          }
        }),
      );
    },

    /**
     * Applies DESTINATION_ON_DROP to a table that left its mirror: keep it, rename it aside (the default: data
     * kept, and a re-created table can snapshot into a fresh one), or drop it. `at` comes from the workflow, so
     * a retry renames to the same name. Returns the table's new name, if it moved.
     */
    async retireDestinationTable(destination: string, policy: MirrorSettings['onDrop'], at: string): Promise<string | null> {
      const database = config.clickhouse.database;
      if (policy === 'keep') return null;
      if (policy === 'drop') {
        await clickhouse.command({ query: dropTable(database, destination) });
        return null;
      }
      if (!(await tableExists(destination))) return null;
      // The first free name from `at` on: a table can leave twice within a second (a rebuild right after an add).
      for (let second = 0; ; second++) {
        const renamed = droppedTableName(destination, new Date(Date.parse(at) + second * 1000), destinationNameLimit(database));
        if (await tableExists(renamed)) continue;
        await clickhouse.command({ query: renameTable(database, destination, renamed) });
        return renamed;
      }
    },

    /**
     * Claims each table's ClickHouse destination for it. A destination another source table already holds is a
     * collision: that table is returned apart and must not be added.
     */
    async claimDestinations(mirror: string, tables: MirrorTable[]): Promise<{ claimed: MirrorTable[]; collisions: DestinationCollision[] }> {
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

    /**
     * Records the tables of watched schemas that a mirror's workflow did not mirror, and why (echodb.unmirrored_
     * tables, and the skip_reason of the events that named them); forgets those that no longer exist. A table
     * recorded here gets a new event on its next ALTER TABLE (sql/005), so that one given a key later is mirrored.
     */
    async recordUnmirrored(mirror: string, tables: (TableRef & { reason: string })[], eventIds: string[]): Promise<void> {
      await querySource(
        `WITH named AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS k(schema_name, table_name, reason)),
         present AS (
           SELECT named.* FROM named
            WHERE EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = named.schema_name AND c.relname = named.table_name)),
         gone AS (
           DELETE FROM echodb.unmirrored_tables u USING named
            WHERE u.schema_name = named.schema_name AND u.table_name = named.table_name
              AND NOT EXISTS (SELECT 1 FROM present p WHERE (p.schema_name, p.table_name) = (named.schema_name, named.table_name))),
         kept AS (
           INSERT INTO echodb.unmirrored_tables (schema_name, table_name, mirror, reason, event_id)
           SELECT schema_name, table_name, $4, reason, $5 FROM present
           ON CONFLICT (schema_name, table_name) DO UPDATE
             SET mirror = excluded.mirror, reason = excluded.reason, event_id = excluded.event_id, recorded_at = now())
         UPDATE echodb.ddl_events e SET skip_reason = present.reason FROM present
          WHERE e.id = ANY($6::bigint[]) AND e.schema_name = present.schema_name AND e.table_name = present.table_name`,
        [
          tables.map((t) => t.schema),
          tables.map((t) => t.table),
          tables.map((t) => t.reason),
          mirror,
          outboxIds(eventIds).at(-1) ?? null,
          outboxIds(eventIds),
        ],
      );
    },

    /** Records what a mirror workflow did (or gave up on), once per operation key. */
    async recordMirrorOperation(operation: MirrorOperation): Promise<void> {
      await querySource(
        `WITH recorded AS (
           INSERT INTO echodb.mirror_operations
             (operation_key, mirror, operation, tables, result, error, workflow_id, event_ids)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint[])
           ON CONFLICT (operation_key) DO NOTHING)
         -- A table a mirror now holds is no longer unmirrored.
         DELETE FROM echodb.unmirrored_tables u
         WHERE $5 = 'succeeded' AND $3 IN ('create', 'add_tables')
           AND u.schema_name || '.' || u.table_name = ANY($4::text[])`,
        [
          operation.key,
          operation.mirror,
          operation.operation,
          operation.tables,
          operation.result,
          operation.error ?? null,
          operation.workflowId,
          outboxIds(operation.eventIds),
        ],
      );
    },
  };
}

/** Outbox ids only: reconcile's synthetic events (`reconcile:<run>:<n>`) have no row, a rename's halves a suffix. */
function outboxIds(eventIds: string[]): string[] {
  return eventIds.map((id) => id.split(':')[0]).filter((id): id is string => /^\d+$/.test(id ?? ''));
}
