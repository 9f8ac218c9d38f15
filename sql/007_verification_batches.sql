-- A batch verify workflow (workflows/verify-tables-workflow.ts) records many tables' verifications from one run: the
-- unique key that keeps a retried activity from recording a verification twice takes the table in. A one-table verify
-- workflow still records its table once per run.
CREATE UNIQUE INDEX IF NOT EXISTS verifications_run_table_idx
  ON echodb.verifications (workflow_id, run_id, schema_name, table_name);
DROP INDEX IF EXISTS echodb.verifications_run_idx;
