import type { Client } from '@temporalio/client';
import type { ServerSettings } from '../test/servers/index.js';
import { startBenchStack } from './api-stack.js';
import { round } from './stats.js';

export interface VerifyBenchResult {
  rows: number;
  repetitions: number;
  /** Commit of the big table until its PeerDB-shaped ClickHouse table held every row (the double's snapshot). */
  secondsUntilMirrored: number;
  /** Each in ms, the median over the repetitions (and each repetition's figure). */
  medianMs: {
    /** `GET /verify?wait=...` round trip: starting verifyTableWorkflow, counting, recording, answering. */
    verifyRequest: number;
    /** verifyTableWorkflow from started to completed (Temporal's event times). */
    verifyWorkflow: number;
    /** The countRows activity from scheduled to completed: the two counts, run in parallel. */
    countRowsActivity: number;
    /** Workflow started until countRows was scheduled (search attributes, the VERIFY_DELAY timer of 0). */
    workflowBeforeCount: number;
    /** countRows completed until the workflow completed (recordVerification). */
    workflowAfterCount: number;
    /** `SELECT count(*)` on PostgreSQL, timed with the client. */
    rawPostgres: number;
    /** `SELECT count() FROM t FINAL WHERE _peerdb_is_deleted = 0` on ClickHouse, timed with the client. */
    rawClickHouse: number;
    /** Both raw scans at once, as countRows runs them. */
    rawBothInParallel: number;
  };
  samplesMs: Record<keyof VerifyBenchResult['medianMs'], number[]>;
  ratio: {
    /** countRows activity / both raw scans in parallel: the overhead of the activity around the two queries. */
    activityToRaw: number;
    /** The whole verify workflow / both raw scans in parallel. */
    workflowToRaw: number;
    /** `GET /verify` round trip / both raw scans in parallel. */
    requestToRaw: number;
  };
}

const median = (sample: number[]) => {
  const sorted = [...sample].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

interface Timestamp {
  seconds?: { toString(): string } | number | null;
  nanos?: number | null;
}
const eventMs = (time: Timestamp | null | undefined) => Number(String(time?.seconds ?? 0)) * 1000 + (time?.nanos ?? 0) / 1e6;

/** From a finished verify workflow's history: its duration and its (last) countRows activity's, in ms. */
async function workflowTimings(temporal: Client, workflowId: string) {
  const history = await temporal.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const started = events.find((event) => event.workflowExecutionStartedEventAttributes);
  const completed = events.find((event) => event.workflowExecutionCompletedEventAttributes);
  const scheduledIds = new Map<string, number>();
  for (const event of events) {
    if (event.activityTaskScheduledEventAttributes?.activityType?.name === 'countRows') {
      scheduledIds.set(String(event.eventId), eventMs(event.eventTime));
    }
  }
  let countRowsMs = Number.NaN;
  let countedAt = Number.NaN;
  for (const event of events) {
    const done = event.activityTaskCompletedEventAttributes;
    const scheduledAt = done && scheduledIds.get(String(done.scheduledEventId));
    if (scheduledAt !== undefined && scheduledAt !== null && scheduledAt !== 0) {
      countedAt = eventMs(event.eventTime);
      countRowsMs = countedAt - scheduledAt;
    }
  }
  const startedAt = eventMs(started?.eventTime);
  const completedAt = eventMs(completed?.eventTime);
  return {
    workflowMs: completedAt - startedAt,
    countRowsMs,
    beforeCountMs: Math.min(...scheduledIds.values()) - startedAt,
    afterCountMs: completedAt - countedAt,
  };
}

/**
 * A `rows`-row table mirrored through the stack (the PeerDB double's snapshot fills its PeerDB-shaped ClickHouse
 * table), then `repetitions` times: an on-demand verify through the API (`GET /verify`), whose countRows activity
 * runs PostgreSQL's count(*) and ClickHouse's FINAL count, against the same two scans run directly.
 */
export async function measureVerify(servers: ServerSettings, rows: number, repetitions: number): Promise<VerifyBenchResult> {
  const { stack, api } = await startBenchStack(servers, { API_VERIFY_WAIT: '600' });
  try {
    const { sql, schema, clickhouse } = stack;
    const table = 'big';
    await sql.query('BEGIN');
    await sql.query(`CREATE TABLE ${schema}.${table} (id int PRIMARY KEY, payload text)`);
    await sql.query(`INSERT INTO ${schema}.${table} SELECT g, md5(g::text) FROM generate_series(1, $1::int) g`, [rows]);
    await sql.query('COMMIT');
    await sql.query(`ANALYZE ${schema}.${table}`);
    const committedAt = Date.now();

    const [first] = await stack.waitForVerification(table, 1, 30 * 60_000);
    const destination = first!.destination;
    for (;;) {
      const live = await clickhouse.liveCount(destination).catch(() => 0);
      if (live >= rows) break;
      if (Date.now() - committedAt > 30 * 60_000) throw new Error(`only ${live} of ${rows} rows in ClickHouse after 30 min`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const secondsUntilMirrored = (Date.now() - committedAt) / 1000;

    const rawPostgres = async () => {
      const startedAt = performance.now();
      const { rows: result } = await sql.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.${table}`);
      if (Number(result[0]?.n) !== rows) throw new Error(`PostgreSQL counted ${result[0]?.n}`);
      return performance.now() - startedAt;
    };
    const rawClickHouse = async () => {
      const startedAt = performance.now();
      const live = await clickhouse.liveCount(destination);
      if (live !== rows) throw new Error(`ClickHouse counted ${live}`);
      return performance.now() - startedAt;
    };
    // Warm both sides' caches once, as the repetitions that follow all run warm.
    await rawPostgres();
    await rawClickHouse();

    const samplesMs: VerifyBenchResult['samplesMs'] = {
      verifyRequest: [],
      verifyWorkflow: [],
      countRowsActivity: [],
      workflowBeforeCount: [],
      workflowAfterCount: [],
      rawPostgres: [],
      rawClickHouse: [],
      rawBothInParallel: [],
    };
    for (let i = 0; i < repetitions; i++) {
      const startedAt = performance.now();
      const response = await fetch(`${api}/verify?schema=${schema}&table=${table}&wait=600`);
      const body = (await response.json()) as { status: string; postgres_count: number; workflow_id: string };
      samplesMs.verifyRequest.push(performance.now() - startedAt);
      if (!response.ok || body.status !== 'match' || body.postgres_count !== rows) {
        throw new Error(`GET /verify answered ${response.status}: ${JSON.stringify(body)}`);
      }
      const timings = await workflowTimings(stack.temporal, body.workflow_id);
      samplesMs.verifyWorkflow.push(timings.workflowMs);
      samplesMs.countRowsActivity.push(timings.countRowsMs);
      samplesMs.workflowBeforeCount.push(timings.beforeCountMs);
      samplesMs.workflowAfterCount.push(timings.afterCountMs);

      samplesMs.rawPostgres.push(await rawPostgres());
      samplesMs.rawClickHouse.push(await rawClickHouse());
      const bothAt = performance.now();
      await Promise.all([rawPostgres(), rawClickHouse()]);
      samplesMs.rawBothInParallel.push(performance.now() - bothAt);
    }

    const medianMs = Object.fromEntries(
      Object.entries(samplesMs).map(([name, sample]) => [name, round(median(sample), 1)]),
    ) as VerifyBenchResult['medianMs'];
    const raw = median(samplesMs.rawBothInParallel);
    return {
      rows,
      repetitions,
      secondsUntilMirrored: round(secondsUntilMirrored, 1),
      medianMs,
      samplesMs: Object.fromEntries(
        Object.entries(samplesMs).map(([name, sample]) => [name, sample.map((ms) => round(ms, 1))]),
      ) as VerifyBenchResult['samplesMs'],
      ratio: {
        activityToRaw: round(median(samplesMs.countRowsActivity) / raw, 2),
        workflowToRaw: round(median(samplesMs.verifyWorkflow) / raw, 2),
        requestToRaw: round(median(samplesMs.verifyRequest) / raw, 2),
      },
    };
  } finally {
    await stack.close();
  }
}
