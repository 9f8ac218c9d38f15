import { Context } from '@temporalio/activity';
import { destinationNameLimit, mirrorNameFor, namingRules } from '../lib/naming.js';
import { parseSourceTableIdentifier, sourceTableIdentifier } from '../lib/workflow-safe/workflow-ids.js';
import { tableFilter } from '../lib/table-filter.js';
import { mirrorEventFor, signalMirrors, type DispatchContext, type MirrorEvent } from '../listener/dispatch.js';
import type { Drift, TableRef } from '../workflows/model.js';
import type { ActivityDependencies } from './index.js';
import { sourceQueries } from './source-database.js';
import { tableFacts } from './table-readiness.js';
import { withBreakerAwareRetries } from './temporal-errors.js';

export function createReconcileActivities(deps: ActivityDependencies) {
  const { config, peerdb, temporal } = deps;
  const querySource = sourceQueries(deps);
  const filter = tableFilter(config.sync);
  const dispatch: DispatchContext = {
    client: temporal,
    taskQueue: config.temporal.taskQueue,
    naming: namingRules(config),
    destinationTemplate: config.mirror.destinationTableTemplate,
    destinationMaxLength: destinationNameLimit(config.clickhouse.database),
  };

  /** The tables EchoDB's mirrors hold, by source identifier: mirrors named as EchoDB names their tables. */
  async function mirroredTables(): Promise<Map<string, { mirror: string; table: TableRef }>> {
    const held = new Map<string, { mirror: string; table: TableRef }>();
    const mirrors = await withBreakerAwareRetries(() => peerdb.listMirrors());
    for (const { name, isCdc } of mirrors) {
      if (!isCdc) continue;
      const status = await withBreakerAwareRetries(() => peerdb.mirrorStatus(name));
      Context.current().heartbeat(name);
      const tables = (status?.cdcStatus?.config?.tableMappings ?? []).map((m) => parseSourceTableIdentifier(m.sourceTableIdentifier));
      if (!tables.some((table) => mirrorNameFor(table, dispatch.naming) === name)) continue;
      for (const table of tables) held.set(sourceTableIdentifier(table), { mirror: name, table });
    }
    return held;
  }

  /** The persistent tables of these schemas that can be mirrored (partitions follow their parent). */
  async function catalogTables(schemas: string[]): Promise<TableRef[]> {
    const { rows } = await querySource<{ schema: string; table: string }>(
      `SELECT n.nspname AS schema, c.relname AS table
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND c.relpersistence = 'p'
        ORDER BY 1, 2`,
      [schemas],
    );
    return rows;
  }

  return {
    /**
     * Compares the watched schemas' tables with the tables in EchoDB's mirrors: a watched table in no mirror
     * needs a create event, a mirrored table that no longer exists a drop event. A mirrored table that exists
     * but is no longer watched (filters changed) is left alone and reported.
     */
    async findDrift(eventIdPrefix: string): Promise<Drift> {
      const held = await mirroredTables();
      const schemas = new Set([...config.sync.schemas, ...[...held.values()].map(({ table }) => table.schema)]);
      const existing = await catalogTables([...schemas]);
      const exists = new Set(existing.map(sourceTableIdentifier));
      // A table PeerDB could not follow (no usable replica identity, under MISSING_REPLICA_IDENTITY=skip) is
      // skipped like a filtered one, with the reason.
      const facts = await tableFacts(querySource, config, existing);
      let next = 0;
      const event = (table: TableRef, operation: 'create' | 'drop') =>
        mirrorEventFor(table, operation, `${eventIdPrefix}:${++next}`, dispatch);

      const drift: Drift = { add: [], remove: [], skipped: [], unwatched: [] };
      for (const [index, table] of existing.entries()) {
        const filtered = filter(table);
        const unusable = facts[index]!.mirrorable ? null : (facts[index]!.reason ?? 'not mirrorable');
        const mirrored = held.has(sourceTableIdentifier(table));
        const watched = config.sync.schemas.includes(table.schema);
        if (filtered !== null) {
          if (mirrored) drift.unwatched.push({ ...table, reason: filtered });
          else if (watched) drift.skipped.push({ ...table, reason: filtered });
        } else if (unusable !== null) {
          // A mirrored table that lost its key breaks its writers (PostgreSQL rejects UPDATE in a publication
          // without a replica identity): its mirror's workflow looks at it again and takes it out.
          if (mirrored) drift.remove.push(event(table, 'create'));
          if (watched) drift.skipped.push({ ...table, reason: unusable });
        } else if (!mirrored) {
          drift.add.push(event(table, 'create'));
        }
      }
      for (const [source, { table }] of held) {
        if (!exists.has(source)) drift.remove.push(event(table, 'drop'));
      }
      return drift;
    },

    /** Signals each mirror's workflow with its events (signal-with-start); resending is deduplicated by event id. */
    async sendTableEvents(events: MirrorEvent[]): Promise<string[]> {
      const { accepted, failed } = await signalMirrors(dispatch, events);
      const [failure] = failed.values();
      if (failure !== undefined) throw failure;
      return [...accepted.values()];
    },
  };
}
