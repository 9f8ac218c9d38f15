-- What EchoDB did to mirrors, and what verification found: durable, so that every replica reports the same
-- figures and an operator can read the history with plain SQL.

-- One row per mirror operation EchoDB carried out or gave up on.
CREATE TABLE IF NOT EXISTS echodb.mirror_operations (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- Given by the workflow (run id and a sequence number): a retried activity records the operation once.
  operation_key text NOT NULL UNIQUE,
  mirror        text NOT NULL,
  operation     text NOT NULL CHECK (operation IN ('create', 'add_tables', 'remove_tables', 'drop')),
  -- Source tables as schema.table identifiers (see lib/workflow-safe/workflow-ids.ts sourceTableIdentifier).
  tables        text[] NOT NULL DEFAULT '{}',
  result        text NOT NULL CHECK (result IN ('succeeded', 'failed')),
  error         text,
  workflow_id   text NOT NULL,
  -- The outbox events that led to this operation.
  event_ids     bigint[] NOT NULL DEFAULT '{}',
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mirror_operations_mirror_idx ON echodb.mirror_operations (mirror, id);

-- One row per finished verification of a table: equal counts, a mismatch after every attempt, or an error.
CREATE TABLE IF NOT EXISTS echodb.verifications (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workflow_id      text NOT NULL,
  run_id           text NOT NULL,
  mirror           text NOT NULL,
  schema_name      text NOT NULL,
  table_name       text NOT NULL,
  destination      text NOT NULL,
  status           text NOT NULL CHECK (status IN ('match', 'mismatch', 'error')),
  -- NULL when that side could not be counted: an unreachable side is never a count of 0.
  postgres_count   bigint,
  clickhouse_count bigint,
  attempts         integer NOT NULL,
  error            text,
  verified_at      timestamptz NOT NULL DEFAULT now(),
  CHECK (status = 'error' OR (postgres_count IS NOT NULL AND clickhouse_count IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS verifications_table_idx ON echodb.verifications (schema_name, table_name, id);
-- A retried activity must not record the same verification twice.
CREATE UNIQUE INDEX IF NOT EXISTS verifications_run_idx ON echodb.verifications (workflow_id, run_id);

-- Which source table writes into which ClickHouse table. Claimed before a table is added to any mirror, so
-- that two source tables can never land in one destination, whatever mirrors they belong to.
CREATE TABLE IF NOT EXISTS echodb.destination_claims (
  destination text PRIMARY KEY,
  source      text NOT NULL,
  mirror      text NOT NULL,
  claimed_at  timestamptz NOT NULL DEFAULT now()
);
