import type { ClickHouseClient } from '@clickhouse/client';
import { failedPrecondition, internal, invalidArgument, notFound, unavailable, unimplemented } from './errors.js';
import {
  readCancelTableAdditionInput,
  readCreateCdcFlowRequest,
  readCreatePeerRequest,
  readFlowStateChangeRequest,
  readListMirrorLogsRequest,
  readMirrorStatusRequest,
  readValidatePeerRequest,
  timestampJson,
  type Peer,
} from './messages.js';
import type { Mirror, Mirrors } from './mirrors.js';
import { peerProblem } from './peer-validation.js';
import type { MessageFields } from './request-fields.js';
import { validateMirror } from './validation.js';

/** flow/cmd/api_error.go ErrUnderMaintenance. */
const UNDER_MAINTENANCE = 'PeerDB is under maintenance. Please retry in a few minutes';

/** The RPCs the double answers: each takes the request message and returns the response message or throws FlowApiError. */
export class FlowApi {
  constructor(
    private readonly peers: Map<string, Peer>,
    private readonly mirrors: Mirrors,
    private readonly clickhouse: ClickHouseClient,
    /** PeerDB's maintenance mode (dynamic setting), read at each request. */
    private readonly underMaintenance: () => boolean,
  ) {}

  /**
   * CreatePeer (flow/cmd/handler.go): ValidatePeer first, unless disableValidation; an invalid peer is a 400
   * FailedPrecondition. Then CreatePeerNoValidate (flow/connectors/utils/peers.go), which answers 200 with status
   * FAILED when the config does not match the type, and leaves an existing peer alone without allowUpdate.
   */
  async createPeer(body: MessageFields) {
    const { peer, allowUpdate, disableValidation } = readCreatePeerRequest(body);
    const accepted = this.checkedPeer(peer);
    if (!disableValidation) {
      if (!accepted) throw failedPrecondition(`${peer!.type} peer ${peer!.name} was invalidated: unsupported peer config`);
      await this.validate(accepted);
    }
    if (!accepted) return { status: 'FAILED', message: `invalid config for ${peer!.type} peer ${peer!.name}: <nil>` };
    if (allowUpdate || !this.peers.has(accepted.name)) this.peers.set(accepted.name, accepted);
    return { status: 'CREATED', message: '' };
  }

  /** ValidatePeer (flow/cmd/validate_peer.go): VALID, or FailedPrecondition (400) with the reason. */
  async validatePeer(body: MessageFields) {
    const { peer } = readValidatePeerRequest(body);
    const accepted = this.checkedPeer(peer);
    if (!accepted) throw failedPrecondition(`${peer!.type} peer ${peer!.name} was invalidated: unsupported peer config`);
    await this.validate(accepted);
    return { status: 'VALID', message: `${accepted.type} peer ${accepted.name} is valid` };
  }

  /** In PeerDB's order: destination peer, existing mirror, a drop still finishing, maintenance, source peer, validation (validation.ts). */
  async createCdcFlow(body: MessageFields) {
    const { connectionConfigs: config, attachToExisting } = readCreateCdcFlowRequest(body);
    if (!config) throw invalidArgument('connection configs cannot be nil');
    const workflowId = `${config.flowJobName}-peerflow`;
    // determineFlags loads the destination peer before anything else.
    const destination = this.peers.get(config.destinationName);
    if (!destination) {
      throw internal(`failed to get destination connector: peers not found: [${config.destinationName}]`);
    }
    if (this.mirrors.get(config.flowJobName) && attachToExisting) return { workflowId };
    this.mirrors.assertCreatable(config.flowJobName);
    if (this.underMaintenance()) throw internal(`invalid mirror: rpc error: code = Unavailable desc = ${UNDER_MAINTENANCE}`);
    const source = this.peers.get(config.sourceName);
    if (!source) {
      throw internal(
        `invalid mirror: rpc error: code = Internal desc = failed to load source peer ${config.sourceName}: peers not found: [${config.sourceName}]`,
      );
    }
    if (source.type !== 'POSTGRES' || destination.type !== 'CLICKHOUSE') {
      throw unimplemented('the PeerDB Flow API test double mirrors only from a POSTGRES peer to a CLICKHOUSE peer');
    }
    if (!config.skipValidation) {
      await validateMirror(config, source.postgresConfig, destination.clickhouseConfig, this.clickhouse);
    }
    // Validation took a while: a concurrent create of the same name may have won.
    this.mirrors.assertCreatable(config.flowJobName);
    this.mirrors.create(config);
    return { workflowId };
  }

  /** FlowStateChange: 503 in maintenance mode; otherwise mirrors.ts does what PeerDB's handler does. */
  async flowStateChange(body: MessageFields) {
    if (this.underMaintenance()) throw unavailable(UNDER_MAINTENANCE);
    const request = readFlowStateChangeRequest(body);
    await this.mirrors.changeState(this.mirror(request.flowJobName), request.requestedFlowState, request.cdcFlowConfigUpdate);
    return {};
  }

  /**
   * MirrorStatus (flow/cmd/mirror_status.go): the state alone, or with includeFlowInfo the config (with the table
   * mappings of the workflow's state), the initial load's clones and the rows synced, which PeerDB reads with a
   * Temporal query and several catalog queries.
   */
  mirrorStatus(body: MessageFields) {
    const request = readMirrorStatusRequest(body);
    const mirror = this.mirror(request.flowJobName);
    return {
      flowJobName: mirror.name,
      ...(request.includeFlowInfo
        ? {
            cdcStatus: {
              config: structuredClone(mirror.config),
              snapshotStatus: { clones: mirror.clones.map((clone) => cloneSummary(mirror, clone)) },
              cdcBatches: [],
              sourceType: 'POSTGRES',
              destinationType: 'CLICKHOUSE',
              rowsSynced: String(mirror.rowsSynced),
            },
          }
        : {}),
      currentFlowState: mirror.status,
      createdAt: timestampJson(mirror.createdAt),
    };
  }

  /** CancelTableAddition (flow/cmd/cancel_table_addition.go): a missing mirror has no status to read (500). */
  async cancelTableAddition(body: MessageFields) {
    const input = readCancelTableAdditionInput(body);
    const mirror = this.mirrors.get(input.flowJobName);
    if (!mirror) {
      throw internal(`failed to get workflow status for flow ${input.flowJobName}: flow job ${input.flowJobName} not found`);
    }
    const tables = await this.mirrors.cancelTableAddition(
      mirror,
      input.currentlyReplicatingTables,
      input.idempotencyKey,
      input.assumeTableRemovalWillNotHappen,
    );
    return { flowJobName: mirror.name, tablesAfterCancellation: tables, runId: `${mirror.name}-run-${mirror.generation}` };
  }

  /**
   * ListMirrorLogs (flow/cmd/mirror_status.go): flow_errors rows whose flow name contains flowJobName (PeerDB
   * matches with position(), so clone jobs count too), of the level asked for, newest first, numPerPage of them
   * (0 gives none: the query says LIMIT 0).
   */
  listMirrorLogs(body: MessageFields) {
    const request = readListMirrorLogsRequest(body);
    const matching = this.mirrors.logs.filter(
      (log) => log.flowName.includes(request.flowJobName) && (request.level === '' || request.level === 'all' || log.errorType === request.level),
    );
    const errors = matching
      .slice()
      .reverse()
      .slice(0, request.numPerPage)
      .map((log) => ({ flowName: log.flowName, errorMessage: log.errorMessage, errorType: log.errorType, errorTimestamp: log.at.getTime(), id: log.id }));
    return { errors, total: matching.length, page: 0 };
  }

  /** createdAt is a double holding Unix milliseconds (PeerDB's ListMirrors uses UnixMilli despite the field name). */
  listMirrors() {
    return {
      mirrors: this.mirrors.list().map((mirror) => ({
        id: mirror.id,
        workflowId: `${mirror.name}-peerflow`,
        name: mirror.name,
        sourceName: mirror.config.sourceName,
        sourceType: 'POSTGRES',
        destinationName: mirror.config.destinationName,
        destinationType: 'CLICKHOUSE',
        createdAt: mirror.createdAt.getTime(),
        isCdc: true,
        status: mirror.status,
      })),
    };
  }

  listMirrorNames() {
    return { names: this.mirrors.names() };
  }

  private mirror(name: string): Mirror {
    const mirror = this.mirrors.get(name);
    if (!mirror) throw notFound(`flow ${name} not found`);
    return mirror;
  }

  private checkedPeer(peer: ReturnType<typeof readCreatePeerRequest>['peer']): Peer | undefined {
    if (!peer) throw invalidArgument('no peer provided');
    if (peer.name === '') throw invalidArgument('no peer name provided');
    if (peer.type === 'POSTGRES' && peer.postgresConfig) return { name: peer.name, type: 'POSTGRES', postgresConfig: peer.postgresConfig };
    if (peer.type === 'CLICKHOUSE' && peer.clickhouseConfig) {
      return { name: peer.name, type: 'CLICKHOUSE', clickhouseConfig: peer.clickhouseConfig };
    }
    return undefined;
  }

  private async validate(peer: Peer): Promise<void> {
    const problem = await peerProblem(peer);
    if (problem) throw failedPrecondition(problem);
  }
}

/** One row of InitialLoadSummary (mirror_status.go): a table's clone run with its single partition. */
function cloneSummary(mirror: Mirror, clone: Mirror['clones'][number]) {
  return {
    tableName: clone.destination,
    startTime: timestampJson(clone.startedAt),
    numPartitionsCompleted: clone.done ? 1 : 0,
    numPartitionsTotal: 1,
    numRowsSynced: String(clone.rows),
    avgTimePerPartitionMs: '0',
    flowJobName: clone.jobName,
    sourceTable: clone.source,
    fetchCompleted: clone.done,
    consolidateCompleted: clone.done,
    mirrorName: mirror.name,
  };
}
