-- Removes exactly what the migrations installed. No CASCADE: anything else that came to depend on EchoDB's
-- objects makes this fail loudly instead of being dropped with them.
DROP EVENT TRIGGER IF EXISTS peerdb_auto_mirror_trigger;
DROP EVENT TRIGGER IF EXISTS peerdb_auto_mirror_alter_trigger;
DROP EVENT TRIGGER IF EXISTS peerdb_auto_mirror_drop_trigger;
DROP FUNCTION IF EXISTS echodb.on_table_created();
DROP FUNCTION IF EXISTS echodb.on_table_altered();
DROP FUNCTION IF EXISTS echodb.on_table_dropped();
DROP FUNCTION IF EXISTS echodb.record_ddl_event(text, text, text, oid, text, text, text);
DROP FUNCTION IF EXISTS echodb.watched_table(oid);
DROP FUNCTION IF EXISTS echodb.lacks_replica_identity(oid);
DROP TABLE IF EXISTS echodb.slot_observations;
DROP TABLE IF EXISTS echodb.dropped_orphans;
DROP TABLE IF EXISTS echodb.mirror_waits;
DROP TABLE IF EXISTS echodb.unmirrored_tables;
DROP TABLE IF EXISTS echodb.destination_claims;
DROP TABLE IF EXISTS echodb.row_diffs;
DROP TABLE IF EXISTS echodb.verifications;
DROP TABLE IF EXISTS echodb.mirror_operations;
DROP TABLE IF EXISTS echodb.ddl_events;
DROP TABLE IF EXISTS echodb.tracked_tables;
DROP TABLE IF EXISTS echodb.schema_migrations;
DROP SCHEMA IF EXISTS echodb;
