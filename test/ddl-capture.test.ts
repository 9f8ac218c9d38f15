import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { installCapture } from '../sql/migrations.js';
import type { DdlEventRow } from '../sql/ddl-events.js';
import { createTestDatabase, listenForDdlEvents, type TestDatabase } from './support/database.js';

const quote = pg.escapeIdentifier;

let database: TestDatabase;
let db: pg.Client;
let listener: Awaited<ReturnType<typeof listenForDdlEvents>>;

beforeEach(async () => {
  database = await createTestDatabase();
  db = await database.connect();
  await installCapture(db);
  listener = await listenForDdlEvents(await database.connect());
});

afterEach(async () => {
  await database.drop();
});

async function outbox(): Promise<DdlEventRow[]> {
  const { rows } = await db.query<DdlEventRow>('SELECT * FROM echodb.ddl_events ORDER BY id');
  return rows;
}

/** Commits a marker table and waits for its notification: everything committed before it has arrived too. */
async function settle(expectedBefore: number): Promise<void> {
  await db.query('CREATE TABLE settle_marker ()');
  await listener.waitForCount(expectedBefore + 1);
  await db.query('DROP TABLE settle_marker');
  await listener.waitForCount(expectedBefore + 2);
}

describe('each DDL form yields exactly one outbox row and one notification carrying its id', () => {
  const forms: { name: string; prepare?: string[]; ddl: string; expected: Partial<DdlEventRow>; channel: string }[] = [
    {
      name: 'CREATE TABLE',
      ddl: 'CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric)',
      expected: { operation: 'create', schema_name: 'public', table_name: 'orders', command_tag: 'CREATE TABLE' },
      channel: 'peerdb_create_mirror',
    },
    {
      name: 'CREATE TABLE AS',
      ddl: 'CREATE TABLE totals AS SELECT 1 AS n',
      expected: { operation: 'create', table_name: 'totals', command_tag: 'CREATE TABLE AS' },
      channel: 'peerdb_create_mirror',
    },
    {
      name: 'SELECT INTO',
      ddl: 'SELECT 1 AS n INTO copied',
      expected: { operation: 'create', table_name: 'copied', command_tag: 'SELECT INTO' },
      channel: 'peerdb_create_mirror',
    },
    {
      name: 'ALTER TABLE ... RENAME',
      prepare: ['CREATE TABLE before_rename (id int)'],
      ddl: 'ALTER TABLE before_rename RENAME TO after_rename',
      expected: {
        operation: 'rename', schema_name: 'public', table_name: 'after_rename',
        old_schema_name: 'public', old_table_name: 'before_rename', command_tag: 'ALTER TABLE',
      },
      channel: 'peerdb_create_mirror',
    },
    {
      name: 'ALTER TABLE ... SET SCHEMA',
      prepare: ['CREATE SCHEMA archive', 'CREATE TABLE moving (id int)'],
      ddl: 'ALTER TABLE moving SET SCHEMA archive',
      expected: {
        operation: 'rename', schema_name: 'archive', table_name: 'moving',
        old_schema_name: 'public', old_table_name: 'moving',
      },
      channel: 'peerdb_create_mirror',
    },
    {
      name: 'DROP TABLE',
      prepare: ['CREATE TABLE doomed (id int)'],
      ddl: 'DROP TABLE doomed',
      expected: { operation: 'drop', schema_name: 'public', table_name: 'doomed', command_tag: 'DROP TABLE' },
      channel: 'peerdb_drop_mirror',
    },
  ];

  for (const form of forms) {
    it(`records ${form.name}`, async () => {
      for (const statement of form.prepare ?? []) await db.query(statement);
      const before = (await outbox()).length;
      await listener.waitForCount(before);

      await db.query(form.ddl);

      const rows = (await outbox()).slice(before);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ ...form.expected, status: 'pending' });
      const [notification] = (await listener.waitForCount(before + 1)).slice(before);
      expect(notification).toEqual({
        channel: form.channel,
        payload: {
          id: Number(rows[0]!.id),
          operation: form.expected.operation,
          schema: rows[0]!.schema_name,
          table: rows[0]!.table_name,
        },
      });
      await settle(before + 1);
      expect(listener.received).toHaveLength(before + 3);
    });
  }

  it('records every table dropped by DROP SCHEMA ... CASCADE, and nothing else', async () => {
    await db.query('CREATE SCHEMA sales');
    await db.query('CREATE TABLE sales.a (id int)');
    await db.query('CREATE TABLE sales.b (id int)');
    await db.query('CREATE VIEW sales.v AS SELECT * FROM sales.a');
    await listener.waitForCount(2);

    await db.query('DROP SCHEMA sales CASCADE');

    const drops = (await outbox()).slice(2);
    expect(drops.map((row) => [row.operation, row.schema_name, row.table_name, row.command_tag])).toEqual([
      ['drop', 'sales', 'a', 'DROP SCHEMA'],
      ['drop', 'sales', 'b', 'DROP SCHEMA'],
    ]);
    const notifications = (await listener.waitForCount(4)).slice(2);
    expect(notifications.map((n) => [n.channel, n.payload.id])).toEqual(
      drops.map((row) => ['peerdb_drop_mirror', Number(row.id)]),
    );
  });
});

describe('transactions', () => {
  it('records nothing for a rolled-back CREATE TABLE', async () => {
    await db.query('BEGIN');
    await db.query('CREATE TABLE never_committed (id int)');
    await db.query('ROLLBACK');

    await settle(0);
    expect(listener.received.map((n) => n.payload.table)).toEqual(['settle_marker', 'settle_marker']);
    expect((await outbox()).map((row) => row.table_name)).toEqual(['settle_marker', 'settle_marker']);
  });

  it('notifies DDL inside a transaction only at commit', async () => {
    const other = await database.connect();
    await db.query('BEGIN');
    await db.query('CREATE TABLE in_transaction (id int)');
    // Another session's committed DDL arrives while ours is still open: ours has not.
    await other.query('CREATE TABLE committed_meanwhile (id int)');
    await listener.waitForCount(1);
    expect(listener.received.map((n) => n.payload.table)).toEqual(['committed_meanwhile']);

    await db.query('COMMIT');

    const [, notification] = await listener.waitForCount(2);
    const row = (await outbox()).find((r) => r.table_name === 'in_transaction');
    expect(notification?.payload).toMatchObject({ table: 'in_transaction', id: Number(row?.id) });
  });

  it('keeps events committed while nobody listens in the outbox, in order', async () => {
    await listener.stop();
    const names = Array.from({ length: 25 }, (_, i) => `unattended_${i}`);
    for (const name of names) await db.query(`CREATE TABLE ${quote(name)} (id int)`);
    await db.query('DROP TABLE unattended_3');

    const rows = await outbox();
    expect(rows.map((row) => [row.operation, row.table_name])).toEqual([
      ...names.map((name) => ['create', name]),
      ['drop', 'unattended_3'],
    ]);
    expect(rows.every((row) => row.status === 'pending')).toBe(true);
    const ids = rows.map((row) => Number(row.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
  });

  it('applies create, drop and create of one name in order, each with its own relation', async () => {
    await db.query('CREATE TABLE phoenix (id int)');
    await db.query('DROP TABLE phoenix');
    await db.query('CREATE TABLE phoenix (id int, name text)');

    const rows = await outbox();
    expect(rows.map((row) => row.operation)).toEqual(['create', 'drop', 'create']);
    expect(rows[0]!.relation_oid).toBe(rows[1]!.relation_oid);
    expect(rows[2]!.relation_oid).not.toBe(rows[0]!.relation_oid);
  });
});

describe('table names', () => {
  const unicode63 = 'ü'.repeat(21) + 'x'.repeat(21); // 42 + 21 = 63 bytes
  const names = [
    'say "hello"',
    'with space',
    'dotted.name',
    'Ünïcødé_表',
    'MixedCase',
    'select',
    'order',
    'a'.repeat(63),
    unicode63,
    "quote's",
    'semi;colon--',
  ];

  it.each(names)('records %j exactly as PostgreSQL knows it', async (name) => {
    await db.query(`CREATE TABLE public.${quote(name)} (id int)`);
    await db.query(`DROP TABLE public.${quote(name)}`);

    const { rows: catalog } = await db.query<{ relname: string }>(
      "SELECT relname FROM pg_class WHERE relname = $1", [name]);
    expect(catalog).toHaveLength(0);
    const rows = await outbox();
    expect(rows.map((row) => [row.operation, row.schema_name, row.table_name])).toEqual([
      ['create', 'public', name],
      ['drop', 'public', name],
    ]);
    const notifications = await listener.waitForCount(2);
    expect(notifications.map((n) => n.payload.table)).toEqual([name, name]);
  });

  it('records a name longer than 63 bytes as PostgreSQL truncated it', async () => {
    const long = 'b'.repeat(70);
    await db.query(`CREATE TABLE ${quote(long)} (id int)`);
    const [row] = await outbox();
    expect(row?.table_name).toBe('b'.repeat(63));
  });

  it('records a table in a schema whose name has a dot, quotes and spaces', async () => {
    const schema = 'my."odd" schema';
    await db.query(`CREATE SCHEMA ${quote(schema)}`);
    await db.query(`CREATE TABLE ${quote(schema)}.${quote('t.1')} (id int)`);
    await db.query(`ALTER TABLE ${quote(schema)}.${quote('t.1')} RENAME TO ${quote('t.2')}`);

    const rows = await outbox();
    expect(rows.map((row) => [row.operation, row.schema_name, row.table_name, row.old_schema_name, row.old_table_name]))
      .toEqual([
        ['create', schema, 't.1', null, null],
        ['rename', schema, 't.2', schema, 't.1'],
      ]);
  });
});

describe('which tables are recorded', () => {
  it('records a partitioned table but none of its partitions', async () => {
    await db.query('CREATE TABLE measurements (at date, v int) PARTITION BY RANGE (at)');
    await db.query("CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')");
    await db.query("CREATE TABLE measurements_2027 PARTITION OF measurements FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')");
    await db.query('DROP TABLE measurements_2026');
    await db.query('DROP TABLE measurements');

    expect((await outbox()).map((row) => [row.operation, row.table_name])).toEqual([
      ['create', 'measurements'],
      ['drop', 'measurements'],
    ]);
  });

  it('records nothing for a temporary table', async () => {
    await db.query('CREATE TEMPORARY TABLE scratch (id int)');
    await db.query('CREATE TEMPORARY TABLE scratch_copy AS SELECT * FROM scratch');
    await db.query('ALTER TABLE scratch RENAME TO scratch_renamed');
    await db.query('DROP TABLE scratch_renamed, scratch_copy');

    await settle(0);
    expect((await outbox()).map((row) => row.table_name)).toEqual(['settle_marker', 'settle_marker']);
  });

  it('records an unlogged table like any other (its changes cannot be replicated; the listener decides)', async () => {
    await db.query('CREATE UNLOGGED TABLE sessions (id int)');
    await db.query('DROP TABLE sessions');

    expect((await outbox()).map((row) => [row.operation, row.table_name])).toEqual([
      ['create', 'sessions'],
      ['drop', 'sessions'],
    ]);
  });

  it("records nothing in EchoDB's own schema", async () => {
    await db.query('CREATE TABLE echodb.internal (id int)');
    await db.query('DROP TABLE echodb.internal');

    await settle(0);
    expect((await outbox()).map((row) => row.table_name)).toEqual(['settle_marker', 'settle_marker']);
  });

  it('ignores ALTER TABLE that changes no name', async () => {
    await db.query('CREATE TABLE stable (id int PRIMARY KEY)');
    await db.query('ALTER TABLE stable ADD COLUMN name text');
    await db.query('ALTER TABLE stable RENAME COLUMN name TO title');

    expect((await outbox()).map((row) => row.operation)).toEqual(['create']);
  });

  it('records a create again for each ALTER TABLE of a table without a replica identity, or one left out', async () => {
    const leftOut = (yes: boolean) =>
      db.query(
        yes
          ? "INSERT INTO echodb.unmirrored_tables (schema_name, table_name, mirror, reason) VALUES ('public', 'keyless', 'm', 'no key')"
          : "DELETE FROM echodb.unmirrored_tables WHERE table_name = 'keyless'",
      );
    await db.query('CREATE TABLE keyless (id int)'); // create
    await db.query('ALTER TABLE keyless ADD COLUMN note text'); // still no key: create again
    await leftOut(true); // as the worker records it
    await db.query('ALTER TABLE keyless ADD PRIMARY KEY (id)'); // left out: create again, to be mirrored now
    await leftOut(false); // as the worker clears it once mirrored
    await db.query('ALTER TABLE keyless ADD COLUMN more text'); // keyed and mirrored: nothing
    await db.query('ALTER TABLE keyless DROP CONSTRAINT keyless_pkey'); // lost its key: create again
    await db.query('ALTER TABLE keyless REPLICA IDENTITY FULL'); // usable identity again: nothing
    await db.query('ALTER TABLE keyless ADD COLUMN last text'); // nothing

    expect((await outbox()).map((row) => [row.operation, row.table_name, row.command_tag])).toEqual([
      ['create', 'keyless', 'CREATE TABLE'],
      ['create', 'keyless', 'ALTER TABLE'],
      ['create', 'keyless', 'ALTER TABLE'],
      ['create', 'keyless', 'ALTER TABLE'],
    ]);
  });

  it('records a table that existed before setup only when it changes', async () => {
    const fresh = await createTestDatabase();
    try {
      const client = await fresh.connect();
      await client.query('CREATE TABLE legacy (id int)');
      await installCapture(client);
      await client.query('ALTER TABLE legacy RENAME TO legacy_v2');
      await client.query('DROP TABLE legacy_v2');

      const { rows } = await client.query<DdlEventRow>('SELECT * FROM echodb.ddl_events ORDER BY id');
      expect(rows.map((row) => [row.operation, row.table_name, row.old_table_name])).toEqual([
        ['rename', 'legacy_v2', 'legacy'],
        ['drop', 'legacy_v2', null],
      ]);
    } finally {
      await fresh.drop();
    }
  });

  it('records a table created while the triggers were disabled as created by its next ALTER TABLE', async () => {
    await db.query('ALTER EVENT TRIGGER peerdb_auto_mirror_trigger DISABLE');
    await db.query('CREATE TABLE sneaked_in (id int)');
    await db.query('ALTER EVENT TRIGGER peerdb_auto_mirror_trigger ENABLE');
    expect(await outbox()).toHaveLength(0);

    await db.query('ALTER TABLE sneaked_in ADD COLUMN note text');

    expect((await outbox()).map((row) => [row.operation, row.table_name, row.command_tag])).toEqual([
      ['create', 'sneaked_in', 'ALTER TABLE'],
    ]);
  });
});

describe('users', () => {
  it("records a non-superuser's DDL", async () => {
    const role = `app_${Date.now()}`;
    await db.query(`CREATE ROLE ${quote(role)} LOGIN PASSWORD 'app-secret'`);
    try {
      await db.query(`GRANT CREATE ON SCHEMA public TO ${quote(role)}`);
      const app = await database.connect({ user: role, password: 'app-secret' });
      await app.query('CREATE TABLE owned_by_app (id int)');
      await app.query('ALTER TABLE owned_by_app RENAME TO owned_by_app_2');
      await app.query('DROP TABLE owned_by_app_2');
      await app.end();

      expect((await outbox()).map((row) => [row.operation, row.table_name])).toEqual([
        ['create', 'owned_by_app'],
        ['rename', 'owned_by_app_2'],
        ['drop', 'owned_by_app_2'],
      ]);
    } finally {
      await db.query(`REVOKE CREATE ON SCHEMA public FROM ${quote(role)}`);
      await db.query(`DROP ROLE ${quote(role)}`);
    }
  });
});

describe('a broken trigger never fails the user statement', () => {
  function collectWarnings(): string[] {
    const warnings: string[] = [];
    db.on('notice', (notice) => {
      if (notice.severity === 'WARNING') warnings.push(notice.message ?? '');
    });
    return warnings;
  }

  it('creates, renames and drops tables while the outbox rejects every insert, warning of each miss', async () => {
    await db.query('ALTER TABLE echodb.ddl_events ADD CONSTRAINT refuse_everything CHECK (false) NOT VALID');
    const warnings = collectWarnings();

    await db.query('CREATE TABLE still_works (id int)');
    await db.query('CREATE TABLE also_works AS SELECT 1 AS n');
    await db.query('ALTER TABLE still_works RENAME TO still_works_2');
    await db.query('DROP TABLE also_works');

    const { rows } = await db.query<{ relname: string }>(
      "SELECT relname FROM pg_class WHERE relname IN ('still_works_2', 'also_works') ORDER BY relname");
    expect(rows.map((row) => row.relname)).toEqual(['still_works_2']);
    // The failed creates left the tables unknown to EchoDB, so the rename tries to record a create, and the
    // drop of a table EchoDB never knew records nothing (reconcile owns both misses).
    expect(warnings).toEqual([
      expect.stringMatching(/^echodb could not record CREATE TABLE \(23514 .*refuse_everything.*reconcile/),
      expect.stringMatching(/^echodb could not record CREATE TABLE AS /),
      expect.stringMatching(/^echodb could not record ALTER TABLE /),
    ]);
    expect(await outbox()).toHaveLength(0);
  });

  it('creates tables while the outbox table is gone', async () => {
    await db.query('ALTER TABLE echodb.ddl_events RENAME TO ddl_events_elsewhere');
    const warnings = collectWarnings();

    await db.query('CREATE TABLE survives (id int)');

    const { rowCount } = await db.query("SELECT 1 FROM pg_class WHERE relname = 'survives'");
    expect(rowCount).toBe(1);
    expect(warnings).toEqual([expect.stringMatching(/echodb could not record CREATE TABLE .*ddl_events/)]);
  });
});
