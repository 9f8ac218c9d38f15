import type pg from 'pg';
import type { MirrorOperationRow, VerificationRow } from '../api/state.js';
import type { DdlEventRow } from '../sql/ddl-events.js';

const table = (schema: string, name: string) => `${schema}.${name}`;

function describeEvent(row: DdlEventRow): string {
  const what = `  outbox  event #${row.id} ${row.operation} ${table(row.schema_name, row.table_name)}`;
  if (row.status === 'skipped') return `${what}: skipped, ${row.skip_reason ?? 'filtered out'}`;
  return `${what}: dispatched to ${row.workflow_id ?? '?'}`;
}

function describeOperation(row: MirrorOperationRow): string {
  const what = `  mirror  ${row.mirror}: ${row.operation.replace('_', ' ')} ${row.tables.join(', ')}`;
  return row.result === 'succeeded' ? `${what}: succeeded` : `${what}: FAILED, ${row.error ?? 'unknown error'}`;
}

function describeVerification(row: VerificationRow): string {
  const what = `  verify  ${table(row.schema_name, row.table_name)}`;
  const rows = (count: string | null) => `${count} ${count === '1' ? 'row' : 'rows'}`;
  const counts = `PostgreSQL ${rows(row.postgres_count)}, ClickHouse ${rows(row.clickhouse_count)}`;
  if (row.status === 'match') return `${what}: match (${counts})`;
  if (row.status === 'mismatch') return `${what}: MISMATCH after ${row.attempts} attempts (${counts})`;
  return `${what}: ERROR, ${row.error ?? 'unknown error'}`;
}

/**
 * Prints what EchoDB did, as it does it, from its durable state in the source database: each outbox event once
 * the listener handled it, each mirror operation, each verification.
 */
export class DemoProgress {
  readonly verifications: VerificationRow[] = [];
  private lastEvent = '0';
  private lastOperation = '0';
  private lastVerification = '0';

  constructor(
    private readonly sql: pg.Client,
    private readonly print: (line: string) => void,
  ) {}

  async printNew(): Promise<void> {
    // Events are handled in id order: stop at the first one still pending, and print it once it is handled.
    const events = await this.sql.query<DdlEventRow>('SELECT * FROM echodb.ddl_events WHERE id > $1 ORDER BY id', [this.lastEvent]);
    for (const row of events.rows) {
      if (row.status === 'pending') break;
      this.print(describeEvent(row));
      this.lastEvent = row.id;
    }
    const operations = await this.sql.query<MirrorOperationRow & { id: string }>(
      'SELECT * FROM echodb.mirror_operations WHERE id > $1 ORDER BY id',
      [this.lastOperation],
    );
    for (const row of operations.rows) {
      this.print(describeOperation(row));
      this.lastOperation = row.id;
    }
    const verifications = await this.sql.query<VerificationRow & { id: string }>(
      'SELECT * FROM echodb.verifications WHERE id > $1 ORDER BY id',
      [this.lastVerification],
    );
    for (const row of verifications.rows) {
      this.print(describeVerification(row));
      this.verifications.push(row);
      this.lastVerification = row.id;
    }
  }
}
