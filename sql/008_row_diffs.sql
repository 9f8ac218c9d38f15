-- The row diff (lib/row-diff, workflows/diff-workflow.ts): one row per finished diff, with its report (bounded
-- example rows), for `echodb diff`, GET /diff and `echodb status`. Trimmed by retention like the verifications:
-- each table's latest diff is kept whatever its age.
CREATE TABLE IF NOT EXISTS echodb.row_diffs (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workflow_id text NOT NULL,
  run_id      text NOT NULL,
  mirror      text NOT NULL,
  schema_name text NOT NULL,
  table_name  text NOT NULL,
  destination text NOT NULL,
  status      text NOT NULL CHECK (status IN ('match', 'lagging', 'different', 'counted', 'error')),
  -- Rows still different after the last re-check, by kind, and rows that converged on a re-check.
  missing     bigint NOT NULL DEFAULT 0,
  extra       bigint NOT NULL DEFAULT 0,
  changed     bigint NOT NULL DEFAULT 0,
  lagging     bigint NOT NULL DEFAULT 0,
  report      jsonb NOT NULL,
  diffed_at   timestamptz NOT NULL DEFAULT now()
);
-- A retried activity must not record the same diff twice.
CREATE UNIQUE INDEX IF NOT EXISTS row_diffs_run_idx ON echodb.row_diffs (workflow_id, run_id);
CREATE INDEX IF NOT EXISTS row_diffs_table_idx ON echodb.row_diffs (schema_name, table_name, id);
CREATE INDEX IF NOT EXISTS row_diffs_diffed_at_idx ON echodb.row_diffs (diffed_at);
