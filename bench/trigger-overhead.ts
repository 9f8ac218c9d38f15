import pg from 'pg';
import type { PostgresSettings } from '../test/servers/index.js';
import { installCapture } from '../sql/migrations.js';
import { percentile, round } from './stats.js';

export interface TriggerOverheadResult {
  statements: number;
  withoutTriggers: { p50Ms: number; p99Ms: number };
  withTriggers: { p50Ms: number; p99Ms: number };
  addedP50Ms: number;
  addedP99Ms: number;
}

async function timeStatement(client: pg.Client, sql: string): Promise<number> {
  const start = process.hrtime.bigint();
  await client.query(sql);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/**
 * CREATE TABLE latency (autocommit, one round trip each) in a database without EchoDB's triggers and in one
 * with them and a listener attached, interleaved so that both see the same machine load.
 */
export async function measureTriggerOverhead(server: PostgresSettings, statements = 500): Promise<TriggerOverheadResult> {
  const admin = new pg.Client(server);
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS bench_plain WITH (FORCE)');
  await admin.query('DROP DATABASE IF EXISTS bench_captured WITH (FORCE)');
  await admin.query('CREATE DATABASE bench_plain');
  await admin.query('CREATE DATABASE bench_captured');
  const plain = new pg.Client({ ...server, database: 'bench_plain' });
  const captured = new pg.Client({ ...server, database: 'bench_captured' });
  const listener = new pg.Client({ ...server, database: 'bench_captured' });
  try {
    await Promise.all([plain.connect(), captured.connect(), listener.connect()]);
    await installCapture(captured);
    let notifications = 0;
    listener.on('notification', () => notifications++);
    await listener.query('LISTEN peerdb_create_mirror');

    const warmUp = 50;
    const without: number[] = [];
    const withTriggers: number[] = [];
    for (let i = 0; i < statements + warmUp; i++) {
      const sql = `CREATE TABLE t_${i} (id bigint PRIMARY KEY, name text, created_at timestamptz)`;
      const a = await timeStatement(plain, sql);
      const b = await timeStatement(captured, sql);
      if (i >= warmUp) {
        without.push(a);
        withTriggers.push(b);
      }
    }
    const { rows } = await captured.query<{ count: string }>('SELECT count(*) FROM echodb.ddl_events');
    if (Number(rows[0]?.count) !== statements + warmUp) throw new Error(`outbox holds ${rows[0]?.count} events`);

    const summary = (sample: number[]) => ({ p50Ms: round(percentile(sample, 50)), p99Ms: round(percentile(sample, 99)) });
    const result = { statements, withoutTriggers: summary(without), withTriggers: summary(withTriggers) };
    return {
      ...result,
      addedP50Ms: round(result.withTriggers.p50Ms - result.withoutTriggers.p50Ms),
      addedP99Ms: round(result.withTriggers.p99Ms - result.withoutTriggers.p99Ms),
    };
  } finally {
    await Promise.all([plain, captured, listener].map((client) => client.end().catch(() => undefined)));
    await admin.query('DROP DATABASE IF EXISTS bench_plain WITH (FORCE)');
    await admin.query('DROP DATABASE IF EXISTS bench_captured WITH (FORCE)');
    await admin.end();
  }
}
