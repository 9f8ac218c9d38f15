-- The outbox: one row for every table event EchoDB acts on, written by the event triggers inside the DDL's own
-- transaction, so an event exists exactly when its DDL committed. NOTIFY only wakes the listener; the
-- listener drains pending rows in id order and records what it did with each.
CREATE SCHEMA IF NOT EXISTS echodb;

CREATE TABLE IF NOT EXISTS echodb.ddl_events (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  operation       text NOT NULL CHECK (operation IN ('create', 'drop', 'rename')),
  -- Names exactly as pg_namespace / pg_class hold them: unquoted, case and spaces kept.
  schema_name     text NOT NULL,
  table_name      text NOT NULL,
  -- For a rename: the name before it (NULL when EchoDB never knew the table under another name).
  old_schema_name text,
  old_table_name  text,
  relation_oid    oid NOT NULL,
  command_tag     text NOT NULL,
  transaction_id  bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
  created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- Dispatch bookkeeping, written by the listener.
  status          text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'dispatched', 'skipped', 'failed')),
  dispatched_at   timestamptz,
  workflow_id     text,
  error           text
);

CREATE INDEX IF NOT EXISTS ddl_events_pending_idx ON echodb.ddl_events (id) WHERE status = 'pending';

-- The tables EchoDB records events for, by relation oid, under the name it last saw. A sql_drop trigger runs
-- after the catalog rows are gone, and ALTER TABLE ... RENAME reports only the new name: this registry tells
-- which dropped relation was a table EchoDB watched, and what a renamed table was called before.
CREATE TABLE IF NOT EXISTS echodb.tracked_tables (
  relation_oid oid PRIMARY KEY,
  schema_name  text NOT NULL,
  table_name   text NOT NULL
);
