import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { postgresEnv, runCli } from './support/cli.js';
import { readMigrations } from '../sql/migrations.js';

describe('echodb CLI', () => {
  let database: TestDatabase;

  beforeEach(async () => {
    database = await createTestDatabase();
  });

  afterEach(async () => {
    await database.drop();
  });

  it('installs the capture with `setup`, finds nothing to do the second time, and removes it with `uninstall`', async () => {
    const env = postgresEnv(database.settings);

    // No Temporal and no PeerDB here: the verify-all schedule and the peers have tests of their own
    // (verify-all-schedule.test.ts, setup.test.ts).
    const first = await runCli(['setup', '--no-schedule', '--no-peers'], env);
    expect(first).toMatchObject({ code: 0, stderr: '' });
    // Every migration of sql/, in order (001_outbox, 002_capture_triggers, ...).
    const migrations = readMigrations();
    const applied = migrations.map((m) => `${String(m.version).padStart(3, '0')}_${m.name}`).join(', ');
    expect(first.stdout).toContain(`setup: applied ${applied} to database "${database.settings.database}"`);

    const second = await runCli(['setup', '--no-schedule', '--no-peers'], env);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`is up to date (${migrations.length} migrations applied earlier)`);

    const db = await database.connect();
    await db.query('CREATE TABLE from_cli_test (id int)');
    const { rows } = await db.query<{ table_name: string }>('SELECT table_name FROM echodb.ddl_events');
    expect(rows).toEqual([{ table_name: 'from_cli_test' }]);

    const removed = await runCli(['uninstall', '--no-schedule'], env);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toMatch(/uninstall: removed/);
    const { rowCount } = await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'echodb'");
    expect(rowCount).toBe(0);
  });

  it('fails with exit 1 and the reason when PostgreSQL cannot be reached', async () => {
    const result = await runCli(['setup'], { ...postgresEnv(database.settings), POSTGRES_PASSWORD: 'wrong' });

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^echodb: .*password authentication failed/);
  });
});
