-- What the listener records about each outbox row: who handled it, why it was skipped, and, while Temporal does
-- not accept it, how often dispatch failed (the last failure is in `error`; the row stays pending).
ALTER TABLE echodb.ddl_events ADD COLUMN IF NOT EXISTS handled_by text;
ALTER TABLE echodb.ddl_events ADD COLUMN IF NOT EXISTS skip_reason text;
ALTER TABLE echodb.ddl_events ADD COLUMN IF NOT EXISTS failed_attempts integer NOT NULL DEFAULT 0;
