// The row diff's vocabulary, shared by its workflow, its activities, the API and the CLI. Types only.
import type { ColumnDrift, Difference, DiffPass, DifferenceKind, ExcludedColumn } from '../lib/row-diff/index.js';
import type { MirrorTable, RetrySettings } from './model.js';

/** DIFF_SETTLE_DELAY, DIFF_RECHECKS, DIFF_EXAMPLES. */
export interface DiffSettings {
  settleDelayMs: number;
  rechecks: number;
  examples: number;
}

export interface DiffTableInput {
  mirror: string;
  table: MirrorTable;
  /** What asked for the diff (on-demand, or a verify-all run): names the workflow. */
  eventId: string;
  /** Given by verify-all; a diff started on its own reads them from the worker's configuration. */
  settings?: DiffSettings;
  retry?: RetrySettings;
}

/** The first look at the table: the differing rows, or why it cannot be diffed by rows (then it is counted). */
export type DiffScan =
  | { kind: 'rows'; pass: DiffPass; excluded: ExcludedColumn[]; drift: ColumnDrift }
  | { kind: 'counts'; reason: string; excluded: ExcludedColumn[]; drift: ColumnDrift };

/**
 * match: every compared row and column agrees. lagging: rows differed, and all converged on a re-check (PeerDB had
 * not applied them yet). different: rows still differ after the last re-check, or columns exist on one side only.
 * counted: no usable primary key, so only the counts were compared (`match` says whether they agree). error: a side
 * could not be read.
 */
export type DiffStatus = 'match' | 'lagging' | 'different' | 'counted' | 'error';

export interface DiffResult {
  workflowId: string;
  mirror: string;
  schema: string;
  table: string;
  destination: string;
  status: DiffStatus;
  match: boolean;
  /** Rows still different after the last re-check, by kind. */
  different: Record<DifferenceKind, number>;
  /** Rows that differed at first and converged on a re-check. */
  lagging: number;
  /** Of `different`, rows beyond those remembered by key: counted again in the same key ranges, not one by one. */
  untracked: number;
  /** The first still-different rows (DIFF_EXAMPLES). */
  examples: Difference[];
  excluded: ExcludedColumn[];
  drift: ColumnDrift;
  /** Segments compared and source rows covered by the first look. */
  segments: number;
  rowsCovered: number;
  rechecks: number;
  /** Why rows were not compared (status counted), with the counts compared instead. */
  fallback?: string;
  counts?: { postgres: number; clickhouse: number };
  error?: string;
  timestamp: string;
}
