-- What an operator needs when a mirror does not move: the waits on PeerDB in progress (and why one stalled), the
-- tables EchoDB left out of its mirrors (and why), and table additions EchoDB had to cancel in PeerDB.

-- One row per mirror whose workflow is waiting on PeerDB right now, written by the waiting activity
-- (activities/mirror-wait.ts) and deleted when the wait ends.
CREATE TABLE IF NOT EXISTS echodb.mirror_waits (
  mirror        text PRIMARY KEY,
  operation     text NOT NULL,
  -- Source tables as schema.table identifiers.
  tables        text[] NOT NULL DEFAULT '{}',
  -- The mirror's PeerDB state last seen, or why PeerDB did not answer.
  state         text NOT NULL,
  since         timestamptz NOT NULL DEFAULT now(),
  -- Set when the wait went MIRROR_STALL_TIMEOUT without progress: since when nothing moved, and why.
  stalled_since timestamptz,
  diagnosis     text,
  updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Tables of the watched schemas that a mirror's workflow did not mirror, and why (no primary key or replica
-- identity, unlogged, a partition...). Deleted once the table is mirrored or gone.
CREATE TABLE IF NOT EXISTS echodb.unmirrored_tables (
  schema_name text NOT NULL,
  table_name  text NOT NULL,
  mirror      text NOT NULL,
  reason      text NOT NULL,
  -- The outbox event that last named it (NULL for reconcile's synthetic events).
  event_id    bigint,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (schema_name, table_name)
);

ALTER TABLE echodb.mirror_operations DROP CONSTRAINT IF EXISTS mirror_operations_operation_check;
ALTER TABLE echodb.mirror_operations ADD CONSTRAINT mirror_operations_operation_check
  CHECK (operation IN ('create', 'add_tables', 'remove_tables', 'drop', 'cancel_addition'));

-- Whether PeerDB could not follow this table's UPDATEs and DELETEs: no primary key under the default replica
-- identity, REPLICA IDENTITY NOTHING, or an identity index that is gone. In a publication, PostgreSQL rejects
-- UPDATE and DELETE on such a table.
CREATE OR REPLACE FUNCTION echodb.lacks_replica_identity(relation oid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE c.relreplident
           WHEN 'f' THEN false
           WHEN 'n' THEN true
           WHEN 'i' THEN NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisreplident)
           ELSE NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary)
         END
  FROM pg_class c WHERE c.oid = relation
$$;

-- ALTER TABLE, as in 002, and one more case: a table EchoDB left out (say, for want of a key), or one that has
-- just lost its replica identity, gets a create event (a "look again") on each ALTER TABLE, so that a table given
-- a primary key is mirrored, and one that lost it leaves its mirror before PostgreSQL rejects its UPDATEs.
CREATE OR REPLACE FUNCTION echodb.on_table_altered()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  command record;
  previous record;
  present record;
  was_known boolean;
BEGIN
  FOR command IN
    SELECT DISTINCT objid, command_tag FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table'
  LOOP
    SELECT * INTO previous FROM echodb.tracked_tables WHERE relation_oid = command.objid;
    was_known := FOUND;
    SELECT * INTO present FROM echodb.watched_table(command.objid);
    IF FOUND THEN
      IF NOT was_known THEN
        INSERT INTO echodb.tracked_tables VALUES (command.objid, present.schema_name, present.table_name);
        PERFORM echodb.record_ddl_event('create', present.schema_name, present.table_name, command.objid,
                                        command.command_tag);
      ELSIF (previous.schema_name, previous.table_name) IS DISTINCT FROM (present.schema_name, present.table_name) THEN
        UPDATE echodb.tracked_tables
        SET schema_name = present.schema_name, table_name = present.table_name
        WHERE relation_oid = command.objid;
        PERFORM echodb.record_ddl_event('rename', present.schema_name, present.table_name, command.objid,
                                        command.command_tag, previous.schema_name, previous.table_name);
      ELSIF echodb.lacks_replica_identity(command.objid)
         OR EXISTS (SELECT 1 FROM echodb.unmirrored_tables u
                    WHERE u.schema_name = present.schema_name AND u.table_name = present.table_name) THEN
        PERFORM echodb.record_ddl_event('create', present.schema_name, present.table_name, command.objid,
                                        command.command_tag);
      END IF;
    ELSIF was_known THEN
      DELETE FROM echodb.tracked_tables WHERE relation_oid = command.objid;
      PERFORM echodb.record_ddl_event('drop', previous.schema_name, previous.table_name, command.objid,
                                      command.command_tag);
    END IF;
  END LOOP;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'echodb could not record % (% %); the next reconcile will catch it', tg_tag, SQLSTATE, SQLERRM;
END
$$;
