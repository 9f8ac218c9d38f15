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
