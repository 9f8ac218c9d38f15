import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

/** The SQL files sit next to this module, in the source tree and in the build alike. */
const SQL_DIR = path.dirname(fileURLToPath(import.meta.url));
const MIGRATION_FILE = /^(\d{3})_([a-z0-9_]+)\.sql$/;
/** Serializes concurrent `echodb setup` runs (two replicas starting at once) on one database. */
const SETUP_LOCK_KEY = 'echodb.setup';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export class NotSuperuserError extends Error {
  constructor(user: string) {
    super(
      `PostgreSQL role "${user}" is not a superuser: installing EchoDB's event triggers needs one ` +
        '(set POSTGRES_USER to a superuser for `echodb setup`; the application itself can run as a lesser role)',
    );
    this.name = 'NotSuperuserError';
  }
}

/** The database holds EchoDB's tables at a migration this release does not know: a newer release installed them. */
export class SchemaTooNew extends Error {
  constructor(readonly installed: number, readonly known: number) {
    super(
      `EchoDB's tables in this database are at migration ${installed}, newer than this release's ${known}: ` +
        'a newer EchoDB installed them; run that release (or newer), not this one',
    );
    this.name = 'SchemaTooNew';
  }
}

/** The newest migration applied in this database (0 for none), or null when EchoDB is not installed there. */
export async function installedSchemaVersion(client: Pick<pg.ClientBase, 'query'>): Promise<number | null> {
  // Two queries: PostgreSQL resolves every table a statement names before it runs, so one statement naming
  // echodb.schema_migrations fails where it does not exist, whatever CASE guards it.
  const { rows } = await client.query<{ installed: boolean }>("SELECT to_regclass('echodb.schema_migrations') IS NOT NULL AS installed");
  if (!rows[0]?.installed) return null;
  const { rows: versions } = await client.query<{ version: number }>('SELECT coalesce(max(version), 0) AS version FROM echodb.schema_migrations');
  return versions[0]?.version ?? 0;
}

/**
 * The migration EchoDB's tables are at, when this release can use them: throws when EchoDB is not installed in this
 * database, and SchemaTooNew when a newer release installed them.
 */
export async function usableSchemaVersion(client: Pick<pg.ClientBase, 'query'>, migrations = readMigrations()): Promise<number> {
  const installed = await installedSchemaVersion(client);
  if (installed === null) throw new Error('EchoDB is not installed in this database (no schema echodb): run `echodb setup` first');
  assertSchemaNotNewer(installed, migrations);
  return installed;
}

/** Throws SchemaTooNew when `installed` is past the newest migration of this release. */
export function assertSchemaNotNewer(installed: number | null, migrations = readMigrations()): void {
  const known = Math.max(0, ...migrations.map((m) => m.version));
  if (installed !== null && installed > known) throw new SchemaTooNew(installed, known);
}

export function readMigrations(dir = SQL_DIR): Migration[] {
  const migrations = fs
    .readdirSync(dir)
    .flatMap((file) => {
      const match = MIGRATION_FILE.exec(file);
      return match ? [{ version: Number(match[1]), name: match[2]!, sql: fs.readFileSync(path.join(dir, file), 'utf8') }] : [];
    })
    .sort((a, b) => a.version - b.version);
  const versions = migrations.map((m) => m.version);
  if (new Set(versions).size !== versions.length) throw new Error(`duplicate migration numbers in ${dir}`);
  return migrations;
}

/**
 * Applies the migrations not yet applied, in order, in one transaction, and records them in
 * echodb.schema_migrations. Running it again applies nothing.
 */
export async function installCapture(client: pg.ClientBase, migrations = readMigrations()): Promise<Migration[]> {
  await assertSuperuser(client);
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [SETUP_LOCK_KEY]);
    await client.query(`
      CREATE SCHEMA IF NOT EXISTS echodb;
      CREATE TABLE IF NOT EXISTS echodb.schema_migrations (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM echodb.schema_migrations');
    const applied = new Set(rows.map((row) => row.version));
    assertSchemaNotNewer(rows.length === 0 ? null : Math.max(...applied), migrations);
    const pending = migrations.filter((m) => !applied.has(m.version));
    for (const migration of pending) {
      await client.query(migration.sql);
      await client.query('INSERT INTO echodb.schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
    }
    await client.query('COMMIT');
    return pending;
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}

/** Removes the triggers, functions, tables and schema that installCapture created, and nothing else. */
export async function uninstallCapture(client: pg.ClientBase): Promise<void> {
  await assertSuperuser(client);
  const sql = fs.readFileSync(path.join(SQL_DIR, 'uninstall.sql'), 'utf8');
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [SETUP_LOCK_KEY]);
    await client.query(sql);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}

async function assertSuperuser(client: pg.ClientBase): Promise<void> {
  const { rows } = await client.query<{ user: string; superuser: boolean }>(
    'SELECT current_user AS user, rolsuper AS superuser FROM pg_roles WHERE rolname = current_user',
  );
  if (!rows[0]?.superuser) throw new NotSuperuserError(rows[0]?.user ?? 'unknown');
}
