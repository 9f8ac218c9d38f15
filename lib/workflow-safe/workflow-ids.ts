/**
 * The names workflow code needs: table identifiers in messages and IDs, and Temporal workflow IDs. Pure and free of
 * Node built-ins: everything under lib/workflow-safe may be imported by workflow code (eslint.config.js enforces it).
 */

export interface TableName {
  readonly schema: string;
  readonly table: string;
}

/**
 * The `sourceTableIdentifier` EchoDB sends PeerDB: `schema.table`, unquoted whatever the names. PeerDB splits it
 * at the dot, looks both parts up verbatim in the catalog and quotes them itself (flow/pkg/common/identifiers.go
 * ParseTableIdentifier), so quotes here would become part of the names. A name holding a dot cannot be given to
 * PeerDB at all: see peerDbNameProblem.
 */
export function sourceTableIdentifier({ schema, table }: TableName): string {
  return `${schema}.${table}`;
}

/** The table a sourceTableIdentifier names, split at the first dot as PeerDB splits it. */
export function parseSourceTableIdentifier(identifier: string): TableName {
  const dot = identifier.indexOf('.');
  if (dot < 0) throw new Error(`not a schema.table identifier: ${JSON.stringify(identifier)}`);
  return { schema: identifier.slice(0, dot), table: identifier.slice(dot + 1) };
}

/**
 * The table in PostgreSQL's quoting, unambiguous whatever the names: `schema.table` when both parts are simple
 * lower-case names, else both parts double-quoted (`"sch.ema"."Ta""ble"`). For IDs, logs and messages; SQL
 * quotes every name (pg.escapeIdentifier).
 */
export function qualifiedName({ schema, table }: TableName): string {
  const simple = /^[a-z_][a-z0-9_$]*$/;
  if (simple.test(schema) && simple.test(table)) return `${schema}.${table}`;
  const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
  return `${quote(schema)}.${quote(table)}`;
}

// Temporal workflow IDs: derived from what the workflow acts on, never random, so that a duplicate start or signal
// lands on the same workflow. EchoDB's own prefix keeps them apart from PeerDB's `<mirror>-peerflow`.

export function mirrorWorkflowId(mirror: string): string {
  return `echodb-mirror:${mirror}`;
}

/**
 * One reconcile at a time per deployment (its task queue): a second request while one runs joins it.
 */
export function reconcileWorkflowId(taskQueue: string): string {
  return `echodb-reconcile:${taskQueue}`;
}

export function verifyWorkflowId(mirror: string, table: TableName, eventId: string): string {
  return `echodb-verify:${mirror}:${eventId}:${qualifiedName(table)}`;
}

/**
 * A batch of tables verified together (verifyTablesWorkflow), named after its first table as verifyWorkflowId names
 * one: that table's mirror, its event (the outbox event that added it, or `verify-all:<run id>`) and its name. Its
 * EchoDbTables search attribute lists every table of the batch.
 */
export function verifyTablesWorkflowId(mirror: string, table: TableName, eventId: string): string {
  return `echodb-verify-tables:${mirror}:${eventId}:${qualifiedName(table)}`;
}

/** A row diff of one table (diffTableWorkflow), for the event that asked for it (`on-demand`, or a verify-all run). */
export function diffWorkflowId(mirror: string, table: TableName, eventId: string): string {
  return `echodb-diff:${mirror}:${eventId}:${qualifiedName(table)}`;
}

/** On-demand verify-all: one at a time per deployment; a second request while one runs joins it. */
export function verifyAllWorkflowId(taskQueue: string): string {
  return `echodb-verify-all:${taskQueue}`;
}

/** The verify-all schedule (schedule IDs are a namespace of their own, apart from workflow IDs). */
export function verifyAllScheduleId(taskQueue: string): string {
  return `echodb-verify-all:${taskQueue}`;
}

/** The workflow ID the schedule starts its runs with; Temporal appends each run's scheduled time. */
export function scheduledVerifyAllWorkflowId(taskQueue: string): string {
  return `echodb-verify-all-scheduled:${taskQueue}`;
}

/** The cleanup schedule (retention: `echodb cleanup` on a timer). */
export function cleanupScheduleId(taskQueue: string): string {
  return `echodb-cleanup:${taskQueue}`;
}

/** The workflow ID the cleanup schedule starts its runs with; Temporal appends each run's scheduled time. */
export function scheduledCleanupWorkflowId(taskQueue: string): string {
  return `echodb-cleanup-scheduled:${taskQueue}`;
}
