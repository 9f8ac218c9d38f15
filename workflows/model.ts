// The vocabulary shared by the workflows, their activities and the code that starts them. Types only: workflow
// code may import nothing else from outside the workflow sandbox.
import type { DiffResult } from './diff-model.js';

export interface TableRef {
  schema: string;
  table: string;
}

/** A source table as one mirror holds it. */
export interface MirrorTable extends TableRef {
  /** The sourceTableIdentifier sent to PeerDB (lib/workflow-safe/workflow-ids.ts). */
  source: string;
  /** The ClickHouse table it lands in. */
  destination: string;
}

/** A table whose ClickHouse destination another source table already holds (`unknown`: released meanwhile). */
export interface DestinationCollision {
  table: MirrorTable;
  heldBy: string;
}

/**
 * One DDL event's meaning for one mirror: "look at this table again". The mirror workflow converges the
 * mirror on what the catalog says then, so duplicates and reordering cannot do harm.
 */
export interface TableEvent extends MirrorTable {
  /** The outbox row's id; a rename gives two table events, `<id>:from` and `<id>:to`. */
  eventId: string;
  operation: 'create' | 'drop' | 'rename';
}

/** A table in the mirror, with the relation it was snapshotted from (null: found in PeerDB, origin unknown). */
export interface TrackedTable extends MirrorTable {
  relationOid: number | null;
}

/** What the mirror workflow carries into its next run when it continues as new. */
export interface MirrorCarriedState {
  tables: TrackedTable[];
  seenEventIds: string[];
  pending: TableEvent[];
  operationSeq: number;
}

export interface MirrorWorkflowInput {
  mirror: string;
  carried?: MirrorCarriedState;
}

export interface MirrorSettings {
  coalesceWindowMs: number;
  onDrop: 'keep' | 'rename' | 'drop';
  verify: VerifySettings;
  retry: RetrySettings;
  verifyAll: VerifyAllSettings;
  /** DESTINATION_CLAIM_WAIT. */
  claimWaitMs: number;
  /** How long a mirror workflow with no mirror left waits for new events before it completes. */
  idleCompletionMs: number;
}

export interface VerifyAllSettings {
  /** VERIFY_CONCURRENCY: tables verified at the same time. */
  concurrency: number;
}

/**
 * MAX_RETRIES, RETRY_DELAY and RETRY_BACKOFF: retries of a failed step after its first attempt, the first wait, and
 * how much longer each next wait is.
 */
export interface RetrySettings {
  maxRetries: number;
  backoffMs: number;
  backoffCoefficient: number;
}

export interface VerifySettings {
  delayMs: number;
  attempts: number;
  intervalMs: number;
  /** VERIFY_BATCH_SIZE; absent from the settings of workflows that read them before it existed. */
  batchSize?: number;
}

/** What the source catalog says about a table right now. */
export interface TableFacts extends TableRef {
  relationOid: number | null;
  /**
   * Exists and can be mirrored: an ordinary or partitioned table, logged, not a partition or temporary, with a
   * replica identity PeerDB can use (or none yet, under MISSING_REPLICA_IDENTITY=set-full).
   */
  mirrorable: boolean;
  reason?: string;
  /** Mirrorable once it has REPLICA IDENTITY FULL, which EchoDB sets right before it goes to PeerDB. */
  needsFullIdentity?: boolean;
}

/** A table EchoDB did not put into a mirror after all, and why (gone, or no usable replica identity). */
export interface LeftOut {
  source: string;
  reason: string;
}

export interface MirrorDescription {
  exists: boolean;
  status: string | null;
  /** The tables PeerDB has in the mirror. */
  tables: MirrorTable[];
}

export interface MirrorOperation {
  key: string;
  mirror: string;
  /** cancel_addition: a table addition PeerDB could never finish, cancelled (activities/mirror-activities.ts). */
  operation: 'create' | 'add_tables' | 'remove_tables' | 'drop' | 'cancel_addition';
  tables: string[];
  result: 'succeeded' | 'failed';
  error?: string;
  workflowId: string;
  eventIds: string[];
}

export interface VerifyTableInput {
  mirror: string;
  table: MirrorTable;
  eventId: string;
  /** Given by the mirror workflow; a verify started on its own reads them from the worker's configuration. */
  settings?: VerifySettings;
  retry?: RetrySettings;
  /**
   * Counts already made by the batch that started it (verifyTablesWorkflow, which found a mismatch): they count
   * towards VERIFY_ATTEMPTS and the attempts recorded. None when absent.
   */
  attemptsDone?: number;
}

/** One table of a batch verified together: its mirror, and the event that names its own verify workflow if it needs one. */
export interface VerifyItem {
  mirror: string;
  table: MirrorTable;
  eventId: string;
}

export interface VerifyTablesInput {
  tables: VerifyItem[];
  /** delayMs is waited before the batched count; attempts and intervalMs go to a mismatching table's verify workflow. */
  settings: VerifySettings;
  retry: RetrySettings;
}

export interface RowCounts {
  postgres: number;
  clickhouse: number;
}

/** One table's counts from a batched count, or why this table could not be counted (the others still were). */
export type TableCount = { counts: RowCounts } | { error: string };

export interface VerificationResult {
  workflowId: string;
  mirror: string;
  schema: string;
  table: string;
  destination: string;
  status: 'match' | 'mismatch' | 'error';
  postgresCount: number | null;
  clickhouseCount: number | null;
  match: boolean;
  difference: number | null;
  attempts: number;
  error?: string;
  timestamp: string;
}

/** A table event addressed to one mirror's workflow (listener/dispatch.ts). */
export interface MirrorEvent {
  mirror: string;
  event: TableEvent;
}

/** What reconcile found: the events that repair the mirrors, and the tables it left alone and why. */
export interface Drift {
  /** Watched tables in no mirror. */
  add: MirrorEvent[];
  /** Mirrored tables that no longer exist. */
  remove: MirrorEvent[];
  /** Tables of the watched schemas that the filters exclude. */
  skipped: (TableRef & { reason: string })[];
  /** Mirrored tables that exist but are no longer watched: left in their mirror. */
  unwatched: (TableRef & { reason: string })[];
}

export interface ReconcileReport {
  added: { mirror: string; table: string }[];
  removed: { mirror: string; table: string }[];
  skipped: { table: string; reason: string }[];
  unwatched: { table: string; reason: string }[];
  /** The mirror workflows that were sent events. */
  workflowIds: string[];
}

/** What one verify-all run found: reconcile's report (null when it could not run) and every table's result. */
/** VERIFY_MODE: what verify-all proves, counts (batched) or a row diff of each table. */
export type VerifyMode = 'count' | 'checksum';

/** verify-all's argument, given by whoever starts it (the schedule, the API, the CLI) from its configuration. */
export interface VerifyAllInput {
  mode?: VerifyMode;
}

export interface VerifyAllReport {
  reconcile: ReconcileReport | null;
  tables: number;
  /** With checksum: a table that diffs as match or lagging, or whose counts match (no primary key). */
  matched: number;
  mismatched: number;
  errors: number;
  /** The counts (VERIFY_MODE=count); empty under checksum. */
  results: VerificationResult[];
  /** Absent in reports from before VERIFY_MODE: count. */
  mode?: VerifyMode;
  /** Each table's row diff (VERIFY_MODE=checksum). */
  diffs?: DiffResult[];
}
