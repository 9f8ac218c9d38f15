/** A row of echodb.ddl_events (sql/001_outbox.sql) as node-postgres returns it: bigint as string. */
export interface DdlEventRow {
  id: string;
  operation: 'create' | 'drop' | 'rename';
  schema_name: string;
  table_name: string;
  old_schema_name: string | null;
  old_table_name: string | null;
  relation_oid: number;
  command_tag: string;
  transaction_id: string;
  created_at: Date;
  status: 'pending' | 'dispatched' | 'skipped';
  dispatched_at: Date | null;
  /** Comma-separated when a rename concerned two mirrors. */
  workflow_id: string | null;
  /** The last dispatch failure, while the row stays pending. */
  error: string | null;
  /** WORKER_ID of the leader that dispatched or skipped the row (sql/004_listener.sql). */
  handled_by: string | null;
  skip_reason: string | null;
  failed_attempts: number;
}
