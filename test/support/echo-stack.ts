import crypto from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type pg from 'pg';
import { loadConfig, type Config } from '../../lib/config.js';
import type { ServerSettings } from '../servers/index.js';
import { namingRules } from '../../lib/naming.js';
import { dispatchRows } from '../../listener/dispatch.js';
import { pendingEvents, recordOutcomes } from '../../listener/outbox.js';
import { tableFilter } from '../../lib/table-filter.js';
import { installCapture } from '../../sql/migrations.js';
import { mirrorWorkflowId } from '../../lib/workflow-safe/workflow-ids.js';
import { mirrorStateQuery, type MirrorView } from '../../workflows/definitions.js';
import { startEchoProcess, type EchoProcess } from './echo-process.js';
import type { PeerDbDouble } from '../peerdb-double/index.js';
import { peerDbForTests } from './peerdb-under-test.js';
import { createTestClickHouse, type TestClickHouse } from './clickhouse.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import type { VerificationRow } from '../../api/state.js';
import { testServers } from './servers.js';

export type { VerificationRow };

export interface EchoStack {
  /** The environment the worker runs with; `echodb run` processes a test starts take it too. */
  env: Record<string, string>;
  config: Config;
  database: TestDatabase;
  sql: pg.Client;
  /** A schema of its own, so that mirror names (and workflow IDs) never meet another test's. */
  schema: string;
  clickhouse: TestClickHouse;
  peerdb: PeerDbDouble;
  temporal: Client;
  /** `echodb run --roles worker` (or the roles asked for) as a child process, as in production. */
  worker: EchoProcess;
  /** Does the listener's job for the events pending in the outbox, in this process: dispatches them in id order. */
  dispatchPending(): Promise<void>;
  mirrorState(mirror: string): Promise<MirrorView>;
  verifications(table: string): Promise<VerificationRow[]>;
  waitForVerification(table: string, count?: number, timeoutMs?: number): Promise<VerificationRow[]>;
  close(): Promise<void>;
}

/**
 * EchoDB's worker against the real PostgreSQL, ClickHouse and Temporal of the test run and a PeerDB Flow API
 * test double, with short windows and delays so that tests run in seconds.
 */
export async function startEchoStack(
  overrides: Record<string, string> | ((schema: string) => Record<string, string>) = {},
  servers: ServerSettings = testServers(),
  options: {
    beforeSetup?: (sql: pg.Client, schema: string) => Promise<void>;
    /** The roles of the `echodb run` process (default: the worker alone; the test dispatches). */
    roles?: string[];
    /** The PeerDB double holds each running mirror's slot active, as PeerDB does (PeerDbDoubleOptions.activeSlots). */
    activeSlots?: boolean;
  } = {},
): Promise<EchoStack> {
  const suffix = crypto.randomBytes(4).toString('hex');
  const schema = `s_${suffix}`;
  const database = await createTestDatabase(servers.postgres);
  const sql = await database.connect();
  await sql.query(`CREATE SCHEMA ${schema}`);
  await options.beforeSetup?.(sql, schema);
  await installCapture(sql);
  const clickhouse = await createTestClickHouse(servers.clickhouse);
  const peerdb = await peerDbForTests(servers.clickhouse, `pg_${suffix}`, { activeSlots: options.activeSlots ?? false });

  const env: Record<string, string> = {
      POSTGRES_HOST: database.settings.host,
      POSTGRES_PORT: String(database.settings.port),
      POSTGRES_DB: database.settings.database,
      POSTGRES_USER: database.settings.user,
      POSTGRES_PASSWORD: database.settings.password,
      CLICKHOUSE_HOST: clickhouse.host,
      CLICKHOUSE_PORT: String(clickhouse.port),
      CLICKHOUSE_DB: clickhouse.database,
      CLICKHOUSE_USER: clickhouse.user,
      CLICKHOUSE_PASSWORD: clickhouse.password,
      // PeerDB dials ClickHouse's native port, and validates the peer by connecting.
      CLICKHOUSE_PEER_PORT: String(servers.clickhouse.nativePort),
      PEERDB_API_URL: peerdb.url,
      PEERDB_REQUEST_TIMEOUT: '2',
      PEERDB_FAILURE_THRESHOLD: '3',
      PEERDB_SUCCESS_THRESHOLD: '1',
      PEERDB_TIMEOUT: '1',
      SYNC_SCHEMA: schema,
      COALESCE_WINDOW: '0.3',
      VERIFY_DELAY: '0.2',
      VERIFY_INTERVAL: '0.3',
      VERIFY_ATTEMPTS: '3',
      RETRY_DELAY: '0.5',
      // The worker creates the verify-all schedule at start-up: once a year keeps it from firing during a test.
      CONSISTENCY_CHECK_INTERVAL: '31536000',
      TEMPORAL_ADDRESS: servers.temporal.address,
      TEMPORAL_NAMESPACE: servers.temporal.namespace,
      TEMPORAL_TASK_QUEUE: `echodb-test-${suffix}`,
      WORKER_ID: `test-${suffix}`,
      // Peers of its own: a PeerDB the tests share (ECHODB_TEST_PEERDB_URL) holds every stack's peers at once.
      SOURCE_PEER_NAME: `pg_${suffix}`,
      TARGET_PEER_NAME: `ch_${suffix}`,
      ...(typeof overrides === 'function' ? overrides(schema) : overrides),
  };
  const config = loadConfig({ envFile: false, env });
  const worker = await startEchoProcess(env, options.roles);
  const connection = await Connection.connect({ address: config.temporal.address });
  const temporal = new Client({ connection, namespace: config.temporal.namespace });

  const verifications = async (table: string): Promise<VerificationRow[]> => {
    const { rows } = await sql.query<VerificationRow>(
      'SELECT * FROM echodb.verifications WHERE schema_name = $1 AND table_name = $2 ORDER BY id',
      [schema, table],
    );
    return rows;
  };

  return {
    env,
    config,
    database,
    sql,
    schema,
    clickhouse,
    peerdb,
    temporal,
    worker,
    async dispatchPending() {
      const context = {
        client: temporal,
        taskQueue: config.temporal.taskQueue,
        naming: namingRules(config),
        destinationTemplate: config.mirror.destinationTableTemplate,
      };
      for (let rows = await pendingEvents(sql, 100); rows.length > 0; rows = await pendingEvents(sql, 100)) {
        const outcomes = await dispatchRows(context, rows, tableFilter(config.sync));
        const failed = outcomes.find((outcome) => outcome.status === 'failed');
        if (failed) throw new Error(`dispatch of event ${failed.id} failed: ${failed.error}`);
        await recordOutcomes(sql, outcomes, config.workerId, new Date());
      }
    },
    mirrorState(mirror) {
      return temporal.workflow.getHandle(mirrorWorkflowId(mirror)).query(mirrorStateQuery);
    },
    verifications,
    async waitForVerification(table, count = 1, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const rows = await verifications(table);
        if (rows.length >= count) return rows;
        if (Date.now() > deadline) throw new Error(`${rows.length} verifications of ${table} after ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async close() {
      await worker.stop();
      await connection.close();
      await peerdb.close();
      await clickhouse.drop();
      await database.drop();
    },
  };
}
