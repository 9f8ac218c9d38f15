-- Retention (lib/retention.ts): `echodb cleanup` and its schedule delete old rows in small batches, found through
-- these indexes by age. And the outbox's 'failed' status goes: the listener never wrote it (a row whose dispatch
-- failed stays pending, with its error).

-- None should exist; were there any, they go back to the listener rather than being lost.
UPDATE echodb.ddl_events SET status = 'pending' WHERE status = 'failed';
ALTER TABLE echodb.ddl_events DROP CONSTRAINT IF EXISTS ddl_events_status_check;
ALTER TABLE echodb.ddl_events ADD CONSTRAINT ddl_events_status_check
  CHECK (status IN ('pending', 'dispatched', 'skipped'));

CREATE INDEX IF NOT EXISTS ddl_events_created_at_idx ON echodb.ddl_events (created_at);
CREATE INDEX IF NOT EXISTS mirror_operations_created_at_idx ON echodb.mirror_operations (created_at);
CREATE INDEX IF NOT EXISTS verifications_verified_at_idx ON echodb.verifications (verified_at);
