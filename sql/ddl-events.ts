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
  status: 'pending' | 'dispatched' | 'skipped' | 'failed';
  dispatched_at: Date | null;
  workflow_id: string | null;
  error: string | null;
}
