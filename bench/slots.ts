import pg from 'pg';
import { readReplicationHealth, recordSlotObservations } from '../lib/replication-slots.js';
import { installCapture } from '../sql/migrations.js';
import type { PostgresSettings } from '../test/servers/index.js';
import { createTestDatabase } from '../test/support/database.js';
import { percentile, round, timeSequential } from './stats.js';

export interface SlotsBenchResult {
  slots: number;
  /** One reading of every slot and publication with their owners (what each scrape, /mirrors and status run), ms. */
  readMs: { p50: number; p95: number };
  /** The leader's record of since when each slot is inactive, ms. */
  recordMs: { p50: number; p95: number };
}

/**
 * The cost of slot health with `count` slots and publications of PeerDB's names in the source database, half of
 * them EchoDB's mirrors (with an operation recorded each), a quarter orphans of mirrors EchoDB dropped, a quarter
 * foreign; `runs` readings each, one after another.
 */
export async function measureSlots(server: PostgresSettings, count: number, runs = 50): Promise<SlotsBenchResult> {
  const database = await createTestDatabase(server);
  const sql = await database.connect();
  const names = Array.from({ length: count }, (_, i) => `bench_mirror_${i}`);
  try {
    await installCapture(sql);
    for (const [i, mirror] of names.entries()) {
      await sql.query(`CREATE PUBLICATION ${pg.escapeIdentifier(`peerflow_pub_${mirror}`)}`);
      await sql.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [`peerflow_slot_${mirror}`]);
      if (i % 4 === 3) continue; // foreign: EchoDB never had it
      await sql.query(
        `INSERT INTO echodb.mirror_operations (operation_key, mirror, operation, result, workflow_id) VALUES ($1, $2, $3, 'succeeded', 'bench')`,
        [`bench:${mirror}`, mirror, i % 4 === 2 ? 'drop' : 'create'],
      );
    }
    const query = (text: string, values: unknown[]) => sql.query(text, values);
    const timed = async (once: () => Promise<void>) => {
      const sample = await timeSequential(runs, once);
      return { p50: round(percentile(sample, 50), 2), p95: round(percentile(sample, 95), 2) };
    };
    const health = await readReplicationHealth(query);
    if (health.slots.length !== count || health.slots.filter((slot) => slot.owner === 'orphan').length !== Math.floor((count + 1) / 4)) {
      throw new Error(`bench slots: read ${health.slots.length} slots, ${health.slots.filter((slot) => slot.owner === 'orphan').length} orphans`);
    }
    return {
      slots: count,
      readMs: await timed(async () => void (await readReplicationHealth(query))),
      recordMs: await timed(() => recordSlotObservations(query)),
    };
  } finally {
    await sql.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'peerflow\\_slot\\_bench\\_%' AND database = current_database()");
    await sql.end();
    await database.drop();
  }
}
