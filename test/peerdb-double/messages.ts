/**
 * The Flow API messages the double reads and writes, with the JSON names of shared/reference/peerdb-flow-api.json
 * (PeerDB v0.37). Stored messages keep their JSON shape, defaults included, because grpc-gateway emits default
 * values: echoing them back needs no further encoding.
 */
import { MessageFields } from './request-fields.js';

const FLOW_STATUSES = [
  'STATUS_UNKNOWN',
  'STATUS_RUNNING',
  'STATUS_PAUSED',
  'STATUS_PAUSING',
  'STATUS_SETUP',
  'STATUS_SNAPSHOT',
  'STATUS_TERMINATING',
  'STATUS_TERMINATED',
  'STATUS_COMPLETED',
  'STATUS_RESYNC',
  'STATUS_FAILED',
  'STATUS_MODIFYING',
] as const;
export type FlowStatus = (typeof FLOW_STATUSES)[number];

/** peerdb_peers.DBType; BIGQUERY is its zero value, what an absent `type` means. */
const DB_TYPES = [
  'BIGQUERY',
  'SNOWFLAKE',
  'MONGO',
  'POSTGRES',
  'S3',
  'SQLSERVER',
  'MYSQL',
  'CLICKHOUSE',
  'KAFKA',
  'PUBSUB',
  'EVENTHUBS',
  'ELASTICSEARCH',
  'COCKROACHDB',
  'DBTYPE_UNKNOWN',
] as const;
type DbType = (typeof DB_TYPES)[number];
/** protos/peers.proto numbers DBType with gaps (no 4; DBTYPE_UNKNOWN is -1). */
const DB_TYPE_NUMBERS = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, -1];

const TABLE_ENGINES = [
  'CH_ENGINE_REPLACING_MERGE_TREE',
  'CH_ENGINE_MERGE_TREE',
  'CH_ENGINE_NULL',
  'CH_ENGINE_REPLICATED_REPLACING_MERGE_TREE',
  'CH_ENGINE_REPLICATED_MERGE_TREE',
  'CH_ENGINE_COALESCING_MERGE_TREE',
] as const;

const TYPE_SYSTEMS = ['Q', 'PG'] as const;

/** The part of a postgresConfig or clickhouseConfig the double uses. */
export interface ConnectionSettings {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** The peer's TLS fields, under their JSON names (peers.proto). */
  tls: TlsFields;
}

/**
 * PostgresConfig: requireTls, disableTls (optional), skipCertVerification, rootCa (optional), tlsHost, clientTls
 * (certificate, privateKey). ClickhouseConfig: disableTls, rootCa, certificate, privateKey (all optional but
 * disableTls), tlsHost.
 */
export interface TlsFields {
  requireTls: boolean;
  /** undefined when the field was absent (PostgresConfig's is optional). */
  disableTls: boolean | undefined;
  skipCertVerification: boolean;
  rootCa: string | undefined;
  tlsHost: string;
  certificate: string | undefined;
  privateKey: string | undefined;
}

interface PeerRequest {
  name: string;
  type: DbType;
  postgresConfig: ConnectionSettings | undefined;
  clickhouseConfig: ConnectionSettings | undefined;
}

export type Peer =
  | { name: string; type: 'POSTGRES'; postgresConfig: ConnectionSettings }
  | { name: string; type: 'CLICKHOUSE'; clickhouseConfig: ConnectionSettings };

export interface ColumnSetting {
  sourceName: string;
  destinationName: string;
  destinationType: string;
  ordering: number;
  partitioning: number;
  nullableEnabled: boolean;
}

export interface TableMapping {
  sourceTableIdentifier: string;
  destinationTableIdentifier: string;
  partitionKey: string;
  exclude: string[];
  columns: ColumnSetting[];
  engine: (typeof TABLE_ENGINES)[number];
  shardingKey: string;
  policyName: string;
  partitionByExpr: string;
}

export interface FlowConnectionConfigs {
  flowJobName: string;
  tableMappings: TableMapping[];
  maxBatchSize: number;
  idleTimeoutSeconds: string;
  cdcStagingPath: string;
  publicationName: string;
  replicationSlotName: string;
  doInitialSnapshot: boolean;
  snapshotNumRowsPerPartition: number;
  snapshotNumPartitionsOverride: number;
  snapshotStagingPath: string;
  snapshotMaxParallelWorkers: number;
  snapshotNumTablesInParallel: number;
  resync: boolean;
  initialSnapshotOnly: boolean;
  softDeleteColName: string;
  syncedAtColName: string;
  script: string;
  system: (typeof TYPE_SYSTEMS)[number];
  sourceName: string;
  destinationName: string;
  env: Record<string, string>;
  version: number;
  flags: string[];
  /** proto3 `optional`: emitted only when it was sent. */
  skipValidation?: boolean;
}

export interface CdcFlowConfigUpdate {
  additionalTables: TableMapping[];
  removedTables: TableMapping[];
  batchSize: number;
  idleTimeout: string;
  updatedEnv: Record<string, string>;
  skipInitialSnapshotForTableAdditions: boolean;
}

export function readCreatePeerRequest(body: MessageFields): {
  peer: PeerRequest | undefined;
  allowUpdate: boolean;
  disableValidation: boolean;
} {
  return {
    allowUpdate: body.bool('allowUpdate'),
    disableValidation: body.bool('disableValidation'),
    peer: readPeer(body.message('peer')),
  };
}

export function readValidatePeerRequest(body: MessageFields): { peer: PeerRequest | undefined } {
  return { peer: readPeer(body.message('peer')) };
}

function readPeer(peer: MessageFields | undefined): PeerRequest | undefined {
  return (
    peer && {
      name: peer.string('name'),
      type: peer.enumName('type', DB_TYPES, DB_TYPE_NUMBERS),
      postgresConfig: readConnectionSettings(peer.message('postgresConfig'), 'postgres'),
      clickhouseConfig: readConnectionSettings(peer.message('clickhouseConfig'), 'clickhouse'),
    }
  );
}

export function readCancelTableAdditionInput(body: MessageFields) {
  return {
    flowJobName: body.string('flowJobName'),
    currentlyReplicatingTables: body.messages('currentlyReplicatingTables').map(readTableMapping),
    idempotencyKey: body.string('idempotencyKey'),
    assumeTableRemovalWillNotHappen: body.bool('assumeTableRemovalWillNotHappen'),
  };
}

function readConnectionSettings(config: MessageFields | undefined, kind: 'postgres' | 'clickhouse'): ConnectionSettings | undefined {
  if (config === undefined) return undefined;
  const optional = (name: string) => (config.has(name) ? config.string(name) : undefined);
  const clientTls = kind === 'postgres' ? config.message('clientTls') : config;
  return {
    host: config.string('host'),
    port: config.int('port'),
    user: config.string('user'),
    password: config.string('password'),
    database: config.string('database'),
    tls: {
      requireTls: kind === 'postgres' && config.bool('requireTls'),
      disableTls: kind === 'clickhouse' || config.has('disableTls') ? config.bool('disableTls') : undefined,
      skipCertVerification: kind === 'postgres' && config.bool('skipCertVerification'),
      rootCa: optional('rootCa'),
      tlsHost: config.string('tlsHost'),
      certificate: clientTls?.has('certificate') ? clientTls.string('certificate') : undefined,
      privateKey: clientTls?.has('privateKey') ? clientTls.string('privateKey') : undefined,
    },
  };
}

export function readCreateCdcFlowRequest(body: MessageFields): {
  connectionConfigs: FlowConnectionConfigs | undefined;
  attachToExisting: boolean;
} {
  const configs = body.message('connectionConfigs');
  return {
    attachToExisting: body.bool('attachToExisting'),
    connectionConfigs: configs && readFlowConnectionConfigs(configs),
  };
}

function readFlowConnectionConfigs(f: MessageFields): FlowConnectionConfigs {
  return {
    flowJobName: f.string('flowJobName'),
    tableMappings: f.messages('tableMappings').map(readTableMapping),
    maxBatchSize: f.int('maxBatchSize'),
    idleTimeoutSeconds: f.int64('idleTimeoutSeconds'),
    cdcStagingPath: f.string('cdcStagingPath'),
    publicationName: f.string('publicationName'),
    replicationSlotName: f.string('replicationSlotName'),
    doInitialSnapshot: f.bool('doInitialSnapshot'),
    snapshotNumRowsPerPartition: f.int('snapshotNumRowsPerPartition'),
    snapshotNumPartitionsOverride: f.int('snapshotNumPartitionsOverride'),
    snapshotStagingPath: f.string('snapshotStagingPath'),
    snapshotMaxParallelWorkers: f.int('snapshotMaxParallelWorkers'),
    snapshotNumTablesInParallel: f.int('snapshotNumTablesInParallel'),
    resync: f.bool('resync'),
    initialSnapshotOnly: f.bool('initialSnapshotOnly'),
    softDeleteColName: f.string('softDeleteColName'),
    syncedAtColName: f.string('syncedAtColName'),
    script: f.string('script'),
    system: f.enumName('system', TYPE_SYSTEMS),
    sourceName: f.string('sourceName'),
    destinationName: f.string('destinationName'),
    env: f.stringMap('env'),
    version: f.int('version'),
    flags: f.strings('flags'),
    ...(f.has('skipValidation') ? { skipValidation: f.bool('skipValidation') } : {}),
  };
}

function readTableMapping(f: MessageFields): TableMapping {
  return {
    sourceTableIdentifier: f.string('sourceTableIdentifier'),
    destinationTableIdentifier: f.string('destinationTableIdentifier'),
    partitionKey: f.string('partitionKey'),
    exclude: f.strings('exclude'),
    columns: f.messages('columns').map((column) => ({
      sourceName: column.string('sourceName'),
      destinationName: column.string('destinationName'),
      destinationType: column.string('destinationType'),
      ordering: column.int('ordering'),
      partitioning: column.int('partitioning'),
      nullableEnabled: column.bool('nullableEnabled'),
    })),
    engine: f.enumName('engine', TABLE_ENGINES),
    shardingKey: f.string('shardingKey'),
    policyName: f.string('policyName'),
    partitionByExpr: f.string('partitionByExpr'),
  };
}

export function readFlowStateChangeRequest(body: MessageFields): {
  flowJobName: string;
  requestedFlowState: FlowStatus;
  cdcFlowConfigUpdate: CdcFlowConfigUpdate | undefined;
} {
  const update = body.message('flowConfigUpdate')?.message('cdcFlowConfigUpdate');
  return {
    flowJobName: body.string('flowJobName'),
    requestedFlowState: body.enumName('requestedFlowState', FLOW_STATUSES),
    cdcFlowConfigUpdate: update && {
      additionalTables: update.messages('additionalTables').map(readTableMapping),
      removedTables: update.messages('removedTables').map(readTableMapping),
      batchSize: update.int('batchSize'),
      idleTimeout: update.int64('idleTimeout'),
      updatedEnv: update.stringMap('updatedEnv'),
      skipInitialSnapshotForTableAdditions: update.bool('skipInitialSnapshotForTableAdditions'),
    },
  };
}

export function readListMirrorLogsRequest(body: MessageFields) {
  return { flowJobName: body.string('flowJobName'), level: body.string('level'), numPerPage: body.int('numPerPage') };
}

/** v0.37.4's MirrorStatusRequest: excludeSnapshotStatus came later (after v0.37.4), so it is an unknown field here. */
export function readMirrorStatusRequest(body: MessageFields) {
  return {
    flowJobName: body.string('flowJobName'),
    includeFlowInfo: body.bool('includeFlowInfo'),
  };
}

/** google.protobuf.Timestamp in JSON: RFC 3339 in UTC, without a fraction when it is zero. */
export function timestampJson(date: Date): string {
  return date.toISOString().replace('.000Z', 'Z');
}
