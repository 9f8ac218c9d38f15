/**
 * The parts of PeerDB's Flow API (v0.37) that EchoDB uses, with the JSON field names of
 * shared/reference/peerdb-flow-api.json. PeerDB silently drops fields it does not know: add fields here only
 * as the contract spells them.
 */

export type FlowStatus =
  | 'STATUS_UNKNOWN'
  | 'STATUS_RUNNING'
  | 'STATUS_PAUSED'
  | 'STATUS_PAUSING'
  | 'STATUS_SETUP'
  | 'STATUS_SNAPSHOT'
  | 'STATUS_TERMINATING'
  | 'STATUS_TERMINATED'
  | 'STATUS_COMPLETED'
  | 'STATUS_RESYNC'
  | 'STATUS_FAILED'
  | 'STATUS_MODIFYING';

export interface PostgresConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  requireTls?: boolean;
  /** TLS without checking the server's certificate (what libpq's sslmode=require does). */
  skipCertVerification?: boolean;
  /** PEM text of the CA that signed the server's certificate. */
  rootCa?: string;
  /** A client certificate and its key, PEM text. */
  clientTls?: { certificate: string; privateKey: string };
}

export interface ClickhouseConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  disableTls: boolean;
  /** PEM text of the CA that signed the server's certificate. */
  rootCa?: string;
  /** A client certificate and its key, PEM text. */
  certificate?: string;
  privateKey?: string;
  /** The name the server's certificate is checked against, when it is not `host`. */
  tlsHost?: string;
  /**
   * This peer's S3 staging (connectors/clickhouse/staging_s3.go): `s3://bucket[/prefix]`, its keys, region and
   * endpoint. When any is set PeerDB uses these instead of its PEERDB_CLICKHOUSE_AWS_* settings.
   */
  s3Path?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  region?: string;
  endpoint?: string;
}

export type Peer =
  | { name: string; type: 'POSTGRES'; postgresConfig: PostgresConfig }
  | { name: string; type: 'CLICKHOUSE'; clickhouseConfig: ClickhouseConfig };

export interface TableMapping {
  sourceTableIdentifier: string;
  destinationTableIdentifier: string;
  exclude?: string[];
  engine?: 'CH_ENGINE_REPLACING_MERGE_TREE';
}

export interface FlowConnectionConfigs {
  flowJobName: string;
  sourceName: string;
  destinationName: string;
  tableMappings: TableMapping[];
  doInitialSnapshot: boolean;
  env?: Record<string, string>;
}

export interface CdcFlowConfigUpdate {
  additionalTables: TableMapping[];
  removedTables: TableMapping[];
}

/** One table's initial load (InitialLoadSummary); int64 fields are strings. */
export interface CloneTableSummary {
  sourceTable: string;
  tableName: string;
  numRowsSynced: string;
  consolidateCompleted: boolean;
}

export interface MirrorStatus {
  flowJobName: string;
  currentFlowState: FlowStatus;
  /** Only when asked with includeFlowInfo, which costs PeerDB a Temporal query and several catalog queries. */
  cdcStatus?: {
    config?: { tableMappings?: TableMapping[] };
    snapshotStatus?: { clones?: CloneTableSummary[] };
  };
}

/** A row of PeerDB's flow_errors (ListMirrorLogs): what its activities logged, newest first. */
export interface MirrorLog {
  flowName: string;
  errorMessage: string;
  errorType: string;
  /** Unix milliseconds. */
  errorTimestamp: number;
}

export interface ListMirrorsItem {
  id: string;
  workflowId: string;
  name: string;
  sourceName: string;
  destinationName: string;
  isCdc: boolean;
  status: FlowStatus;
}
