import type pg from 'pg';

/** `count` tables t_0 ... of 10 rows each in `schema`, created in one transaction, as a migration would. */
export async function createTablesInOneTransaction(sql: pg.Client, schema: string, count: number): Promise<void> {
  await sql.query('BEGIN');
  for (let i = 0; i < count; i++) {
    await sql.query(`CREATE TABLE ${schema}.t_${i} (id int PRIMARY KEY, payload text)`);
    await sql.query(`INSERT INTO ${schema}.t_${i} SELECT g, 'row ' || g FROM generate_series(1, 10) g`);
  }
  await sql.query('COMMIT');
}

/** Waits until echodb.verifications holds `count` results (every table of a load verified), at most 30 minutes. */
export async function waitForVerifications(sql: pg.Client, count: number): Promise<void> {
  const startedAt = Date.now();
  for (;;) {
    const { rows } = await sql.query<{ n: string }>('SELECT count(*) AS n FROM echodb.verifications');
    if (Number(rows[0]?.n) >= count) return;
    if (Date.now() - startedAt > 30 * 60_000) throw new Error(`only ${rows[0]?.n} of ${count} verified after 30 min`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
