-- The event triggers that write the outbox. Each one swallows its own errors (as a WARNING): EchoDB must never
-- fail a user's DDL; the reconcile step finds what a failed trigger missed.

-- The relation as EchoDB records it, or no row when it is not a table EchoDB watches: temporary tables,
-- partitions (their parent is the table), views and the like, and the system and EchoDB schemas.
CREATE OR REPLACE FUNCTION echodb.watched_table(relation oid)
RETURNS TABLE (schema_name text, table_name text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT n.nspname::text, c.relname::text
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = relation
    AND c.relkind IN ('r', 'p')
    AND c.relpersistence <> 't'
    AND NOT c.relispartition
    AND n.nspname <> 'echodb'
    AND n.nspname <> 'information_schema'
    AND n.nspname NOT LIKE 'pg\_%'
$$;

CREATE OR REPLACE FUNCTION echodb.record_ddl_event(
  operation text, schema_name text, table_name text, relation oid, command_tag text,
  old_schema_name text DEFAULT NULL, old_table_name text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  event_id bigint;
BEGIN
  INSERT INTO echodb.ddl_events
    (operation, schema_name, table_name, old_schema_name, old_table_name, relation_oid, command_tag)
  VALUES
    (operation, schema_name, table_name, old_schema_name, old_table_name, relation, command_tag)
  RETURNING id INTO event_id;
  -- The payload stays far below NOTIFY's 8000-byte limit: names are at most 63 bytes.
  PERFORM pg_notify(
    CASE WHEN operation = 'drop' THEN 'peerdb_drop_mirror' ELSE 'peerdb_create_mirror' END,
    json_build_object('id', event_id, 'operation', operation, 'schema', schema_name, 'table', table_name)::text);
END
$$;

-- CREATE TABLE, CREATE TABLE AS, SELECT INTO.
CREATE OR REPLACE FUNCTION echodb.on_table_created()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  command record;
  created record;
BEGIN
  FOR command IN SELECT objid, command_tag FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table' LOOP
    SELECT * INTO created FROM echodb.watched_table(command.objid);
    CONTINUE WHEN NOT FOUND;
    INSERT INTO echodb.tracked_tables (relation_oid, schema_name, table_name)
    VALUES (command.objid, created.schema_name, created.table_name)
    ON CONFLICT (relation_oid) DO UPDATE SET schema_name = excluded.schema_name, table_name = excluded.table_name;
    PERFORM echodb.record_ddl_event('create', created.schema_name, created.table_name, command.objid,
                                    command.command_tag);
  END LOOP;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'echodb could not record % (% %); the next reconcile will catch it', tg_tag, SQLSTATE, SQLERRM;
END
$$;

-- ALTER TABLE: compares what the registry knew with what the catalog now says. A new name or schema is a
-- rename; a table that stopped being watched (attached as a partition, moved into EchoDB's schema) is a drop;
-- one that became watched (a detached partition, or a table created while the triggers were off) is a create.
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

-- Every drop of a watched table: DROP TABLE, DROP SCHEMA ... CASCADE, DROP OWNED. The catalog rows are gone
-- by now, so the registry decides which dropped relations were watched tables.
CREATE OR REPLACE FUNCTION echodb.on_table_dropped()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  dropped record;
BEGIN
  FOR dropped IN
    SELECT t.relation_oid, d.schema_name, d.object_name
    FROM pg_event_trigger_dropped_objects() d
    JOIN echodb.tracked_tables t ON t.relation_oid = d.objid
    WHERE d.object_type = 'table'
  LOOP
    DELETE FROM echodb.tracked_tables WHERE relation_oid = dropped.relation_oid;
    PERFORM echodb.record_ddl_event('drop', dropped.schema_name, dropped.object_name, dropped.relation_oid, tg_tag);
  END LOOP;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'echodb could not record % (% %); the next reconcile will catch it', tg_tag, SQLSTATE, SQLERRM;
END
$$;

-- The creation trigger keeps the original manual's name, so its troubleshooting commands still work.
DROP EVENT TRIGGER IF EXISTS peerdb_auto_mirror_trigger;
CREATE EVENT TRIGGER peerdb_auto_mirror_trigger ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
  EXECUTE FUNCTION echodb.on_table_created();

DROP EVENT TRIGGER IF EXISTS peerdb_auto_mirror_alter_trigger;
CREATE EVENT TRIGGER peerdb_auto_mirror_alter_trigger ON ddl_command_end
  WHEN TAG IN ('ALTER TABLE')
  EXECUTE FUNCTION echodb.on_table_altered();

DROP EVENT TRIGGER IF EXISTS peerdb_auto_mirror_drop_trigger;
CREATE EVENT TRIGGER peerdb_auto_mirror_drop_trigger ON sql_drop
  EXECUTE FUNCTION echodb.on_table_dropped();

-- Tables that exist at install time are watched from now on; reconcile mirrors them (no event is invented).
INSERT INTO echodb.tracked_tables (relation_oid, schema_name, table_name)
SELECT c.oid, w.schema_name, w.table_name
FROM pg_class c
CROSS JOIN LATERAL echodb.watched_table(c.oid) w
WHERE c.relkind IN ('r', 'p')
ON CONFLICT (relation_oid) DO NOTHING;
