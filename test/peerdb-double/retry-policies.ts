/**
 * The Temporal retry policies of the PeerDB activities the double models, as PeerDB v0.37.4 sets them, and the
 * loop that honours one. What matters for EchoDB is which steps PeerDB retries for ever: a mirror whose step keeps
 * failing stays in its state (SETUP, SNAPSHOT) and never becomes STATUS_FAILED.
 *
 * An activity error only stops the retries when the activity returns a non-retryable ApplicationError itself:
 * PeerDB wraps its errors (`fmt.Errorf("...: %w", err)`), and the Go SDK's failure converter looks only at the
 * outer error (sdk-go internal/failure_converter.go, DefaultFailureConverter.ErrorToFailure), so even
 * shared.ErrTableDoesNotExist is retried once wrapped.
 */

export interface RetryPolicy {
  /** Why PeerDB retries this step, and where. */
  readonly step: string;
  readonly initialMs: number;
  readonly coefficient: number;
  readonly maxIntervalMs: number;
  /** 0: for ever. */
  readonly maxAttempts: number;
}

/** Temporal's default activity retry policy: 1 s, doubling, at most 100 times the first interval, no limit. */
function temporalDefault(step: string, initialMs = 1000, maxAttempts = 0): RetryPolicy {
  return { step, initialMs, coefficient: 2, maxIntervalMs: 100 * initialMs, maxAttempts };
}

export const PEERDB_RETRIES = {
  /** flow/workflows/setup_flow.go checkConnectionsAndSetupMetadataTables: no RetryPolicy, Temporal's default. */
  checkConnections: temporalDefault('CheckConnection (setup_flow.go checkConnectionsAndSetupMetadataTables)'),
  /** setup_flow.go ensurePullability: InitialInterval 1 minute, no attempt limit. */
  ensurePullability: temporalDefault('EnsurePullability (setup_flow.go ensurePullability)', 60_000),
  /** setup_flow.go createNormalizedTables: InitialInterval 1 minute, no attempt limit. */
  createNormalizedTables: temporalDefault('CreateNormalizedTable (setup_flow.go createNormalizedTables)', 60_000),
  /** flow/workflows/snapshot_flow.go setupReplication: InitialInterval 1 minute, MaximumAttempts 20. */
  setupReplication: temporalDefault('SetupReplication (snapshot_flow.go setupReplication)', 60_000, 20),
  /** flow/workflows/cdc_flow.go processTableAdditions: AddTablesToPublication has no RetryPolicy. */
  addTablesToPublication: temporalDefault('AddTablesToPublication (cdc_flow.go processTableAdditions)'),
  /** cdc_flow.go processTableRemovals: InitialInterval 1 minute, no attempt limit. */
  removeTablesFromPublication: temporalDefault('RemoveTablesFromPublication (cdc_flow.go processTableRemovals)', 60_000),
  /**
   * cdc_flow.go processTableAdditions runs the added tables' CDCFlowWorkflow as a child with MaximumAttempts 20;
   * each attempt starts with its own setup (whose EnsurePullability is retried for ever, above).
   */
  tableAdditionChild: temporalDefault('the table addition child CDCFlowWorkflow (cdc_flow.go processTableAdditions)', 1000, 20),
} as const satisfies Record<string, RetryPolicy>;

/** The wait before retry `attempt` (1 = the first retry). */
export function retryDelayMs(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.initialMs * policy.coefficient ** (attempt - 1), policy.maxIntervalMs);
}
