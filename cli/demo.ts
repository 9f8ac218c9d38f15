import pg from 'pg';
import { startLocalServers } from '../lib/local-servers/index.js';
import { installCapture } from '../sql/migrations.js';
import type { DdlEventRow } from '../sql/ddl-events.js';

const SAMPLE_DDL = [
  'CREATE SCHEMA shop',
  'CREATE TABLE shop.customers (id bigserial PRIMARY KEY, name text NOT NULL)',
  'CREATE TABLE shop."Order Items" (id bigserial PRIMARY KEY, sku text, quantity int)',
  'CREATE TABLE shop.orders_2026 AS SELECT 1 AS id, now() AS placed_at',
  'ALTER TABLE shop.orders_2026 RENAME TO orders',
  'CREATE TEMPORARY TABLE scratch (id int)',
  'DROP TABLE shop.customers',
];

const ident = (schema: string, table: string): string => `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)}`;

function describe(row: DdlEventRow): string {
  const target = ident(row.schema_name, row.table_name);
  const renamedFrom =
    row.operation === 'rename' && row.old_table_name !== null
      ? ` (was ${ident(row.old_schema_name ?? '', row.old_table_name)})`
      : '';
  return `  event #${row.id}: ${row.operation.padEnd(6)} ${target}${renamedFrom}  [${row.command_tag}]`;
}

/**
 * Shows the DDL capture on a throwaway PostgreSQL: what the event triggers record and notify. With `exit`, stops
 * after the sample; otherwise keeps running so that the user can try their own DDL, until Ctrl-C.
 */
export async function runDemo(options: { exit?: boolean } = {}): Promise<void> {
  console.log('demo: starting a throwaway PostgreSQL 15 (wal_level=logical) on a free loopback port ...');
  const servers = await startLocalServers({ only: ['postgres'] });
  const settings = servers.settings.postgres;
  const database = new pg.Client(settings);
  const listener = new pg.Client(settings);
  try {
    await database.connect();
    await listener.connect();
    const applied = await installCapture(database);
    console.log(`demo: installed ${applied.map((m) => m.name).join(', ')} (schema echodb, outbox, event triggers)`);

    const show = async (id: number): Promise<void> => {
      const { rows } = await database.query<DdlEventRow>('SELECT * FROM echodb.ddl_events WHERE id = $1', [id]);
      for (const row of rows) console.log(describe(row));
    };
    let pending = Promise.resolve();
    listener.on('notification', (message) => {
      const { id } = JSON.parse(message.payload ?? '{}') as { id: number };
      pending = pending.then(() => show(id)).catch((error: unknown) => console.error(`demo: ${String(error)}`));
    });
    await listener.query('LISTEN peerdb_create_mirror; LISTEN peerdb_drop_mirror');

    for (const statement of SAMPLE_DDL) {
      console.log(`sql> ${statement}`);
      await database.query(statement);
      await new Promise((resolve) => setTimeout(resolve, 50)); // let its notification print under it
      await pending;
    }
    console.log('demo: the temporary table was not recorded; every other statement left one outbox row.');

    if (options.exit) return;
    const url = `postgresql://${settings.user}:${settings.password}@${settings.host}:${settings.port}/${settings.database}`;
    console.log(`\nTry your own DDL; each captured event prints here:\n  psql '${url}'\nCtrl-C stops everything.`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  } finally {
    await Promise.all([database.end(), listener.end()].map((p) => p.catch(() => undefined)));
    await servers.stop();
    console.log('demo: stopped; the throwaway server and its files are gone.');
  }
}
