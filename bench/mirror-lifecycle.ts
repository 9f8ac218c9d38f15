import type { ServerSettings } from '../test/servers/index.js';
import { namingRules } from '../lib/naming.js';
import { dispatchRows } from '../listener/dispatch.js';
import { tableFilter } from '../lib/table-filter.js';
import type { DdlEventRow } from '../sql/ddl-events.js';
import { startEchoStack } from '../test/support/echo-stack.js';
import { tablesAddedBy } from '../test/peerdb-double/index.js';
import { percentile, round } from './stats.js';
import { createTablesInOneTransaction } from './tables.js';

export interface MirrorBenchResult {
  strategy: 'per-schema' | 'per-table';
  tables: number;
  peerdbRequests: Record<string, number>;
  peerdbRequestsTotal: number;
  replicationSlotsUsed: number;
  /** From the commit until the last table was in its mirror (its create or add_tables recorded as succeeded). */
  secondsUntilAllAdded: number;
  secondsUntilAllVerified: number;
  verifiedMatching: number;
  signalToPeerDbRequestMs: { p50: number; p99: number };
}

/**
 * `tables` tables created in one transaction (10 rows each), under one strategy: the PeerDB requests EchoDB
 * issues, the replication slots its mirrors hold, the time from commit until every table is in its mirror and until
 * every table is verified, and the
 * latency from a signal accepted by Temporal to the Flow API request that adds its table.
 */
export async function measureMirrorLifecycle(
  servers: ServerSettings,
  strategy: MirrorBenchResult['strategy'],
  tables: number,
): Promise<MirrorBenchResult> {
  const stack = await startEchoStack(
    { MIRROR_STRATEGY: strategy, COALESCE_WINDOW: '1', VERIFY_DELAY: '1', PEERDB_REQUEST_TIMEOUT: '30' },
    servers,
  );
  try {
    const { sql, schema } = stack;
    await createTablesInOneTransaction(sql, schema, tables);
    const committedAt = Date.now();

    const { rows } = await sql.query<DdlEventRow>("SELECT * FROM echodb.ddl_events WHERE status = 'pending' ORDER BY id");
    const signalledAt = new Map<string, number>();
    const context = {
      client: stack.temporal,
      taskQueue: stack.config.temporal.taskQueue,
      naming: namingRules(stack.config),
      destinationTemplate: stack.config.mirror.destinationTableTemplate,
    };
    // As the listener does: batches of OUTBOX_BATCH_SIZE, one signal per mirror per batch.
    for (let start = 0; start < rows.length; start += stack.config.outbox.batchSize) {
      const batch = rows.slice(start, start + stack.config.outbox.batchSize);
      await dispatchRows(context, batch, tableFilter(stack.config.sync));
      for (const row of batch) signalledAt.set(`${row.schema_name}.${row.table_name}`, Date.now());
    }

    let slots = 0;
    let verified = 0;
    for (;;) {
      slots = Math.max(slots, stack.peerdb.slotNames().length);
      const { rows: counts } = await sql.query<{ n: string }>('SELECT count(*) AS n FROM echodb.verifications');
      verified = Number(counts[0]?.n);
      if (verified >= tables) break;
      if (Date.now() - committedAt > 30 * 60_000) throw new Error(`only ${verified} of ${tables} verified after 30 min`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const secondsUntilAllVerified = (Date.now() - committedAt) / 1000;

    const firstRequestAt = new Map<string, number>();
    const peerdbRequests: Record<string, number> = {};
    for (const request of stack.peerdb.requests) {
      peerdbRequests[request.path] = (peerdbRequests[request.path] ?? 0) + 1;
      for (const source of tablesAddedBy(request)) {
        if (!firstRequestAt.has(source)) firstRequestAt.set(source, request.at.getTime());
      }
    }
    const latencies = [...signalledAt].flatMap(([source, at]) => {
      const requested = firstRequestAt.get(source);
      return requested === undefined ? [] : [requested - at];
    });
    const { rows: added } = await sql.query<{ at: Date }>(
      "SELECT max(created_at) AS at FROM echodb.mirror_operations WHERE operation IN ('create', 'add_tables') AND result = 'succeeded'",
    );
    const { rows: matching } = await sql.query<{ n: string }>(
      "SELECT count(*) AS n FROM echodb.verifications WHERE status = 'match'",
    );
    return {
      strategy,
      tables,
      peerdbRequests,
      peerdbRequestsTotal: stack.peerdb.requests.length,
      replicationSlotsUsed: slots,
      secondsUntilAllAdded: round((added[0]!.at.getTime() - committedAt) / 1000, 1),
      secondsUntilAllVerified: round(secondsUntilAllVerified, 1),
      verifiedMatching: Number(matching[0]?.n),
      signalToPeerDbRequestMs: { p50: round(percentile(latencies, 50), 1), p99: round(percentile(latencies, 99), 1) },
    };
  } finally {
    await stack.close();
  }
}
