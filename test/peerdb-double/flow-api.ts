import type { ClickHouseClient } from '@clickhouse/client';
import { alreadyExists, failedPrecondition, internal, invalidArgument, notFound, unimplemented } from './errors.js';
import {
  readCreateCdcFlowRequest,
  readCreatePeerRequest,
  readFlowStateChangeRequest,
  readMirrorStatusRequest,
  timestampJson,
  type Peer,
} from './messages.js';
import type { Mirror, Mirrors } from './mirrors.js';
import type { MessageFields } from './request-fields.js';
import { validateMirror } from './validation.js';

/** The RPCs the double answers: each takes the request message and returns the response message or throws FlowApiError. */
export class FlowApi {
  constructor(
    private readonly peers: Map<string, Peer>,
    private readonly mirrors: Mirrors,
    private readonly clickhouse: ClickHouseClient,
  ) {}

  /** An existing peer is replaced only with allowUpdate; without it PeerDB leaves it alone and still answers CREATED. */
  createPeer(body: MessageFields) {
    const { peer, allowUpdate } = readCreatePeerRequest(body);
    if (!peer) throw invalidArgument('no peer provided');
    if (peer.name === '') throw invalidArgument('no peer name provided');
    let accepted: Peer;
    if (peer.type === 'POSTGRES' && peer.postgresConfig) {
      accepted = { name: peer.name, type: 'POSTGRES', postgresConfig: peer.postgresConfig };
    } else if (peer.type === 'CLICKHOUSE' && peer.clickhouseConfig) {
      accepted = { name: peer.name, type: 'CLICKHOUSE', clickhouseConfig: peer.clickhouseConfig };
    } else {
      throw failedPrecondition(
        `invalid config for ${peer.type} peer ${peer.name}: the PeerDB Flow API test double takes POSTGRES peers with postgresConfig and CLICKHOUSE peers with clickhouseConfig`,
      );
    }
    if (allowUpdate || !this.peers.has(peer.name)) this.peers.set(peer.name, accepted);
    return { status: 'CREATED', message: '' };
  }

  /** In PeerDB's order: destination peer, existing mirror, source peer, then the validation of validation.ts. */
  async createCdcFlow(body: MessageFields) {
    const { connectionConfigs: config, attachToExisting } = readCreateCdcFlowRequest(body);
    if (!config) throw invalidArgument('connection configs cannot be nil');
    const workflowId = `${config.flowJobName}-peerflow`;
    const destination = this.peers.get(config.destinationName);
    if (!destination) {
      throw internal(`failed to get destination connector: peers not found: [${config.destinationName}]`);
    }
    if (this.mirrors.get(config.flowJobName)) {
      if (attachToExisting) return { workflowId };
      throw alreadyExists(`flow already exists: ${config.flowJobName}`);
    }
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
    if (this.mirrors.get(config.flowJobName)) throw alreadyExists(`flow already exists: ${config.flowJobName}`);
    this.mirrors.create(config);
    return { workflowId };
  }

  flowStateChange(body: MessageFields) {
    const request = readFlowStateChangeRequest(body);
    this.mirrors.changeState(this.mirror(request.flowJobName), request.requestedFlowState, request.cdcFlowConfigUpdate);
    return {};
  }

  /** cdcStatus is there only with includeFlowInfo, as in PeerDB. */
  mirrorStatus(body: MessageFields) {
    const request = readMirrorStatusRequest(body);
    const mirror = this.mirror(request.flowJobName);
    return {
      flowJobName: mirror.name,
      ...(request.includeFlowInfo
        ? {
            cdcStatus: {
              config: structuredClone(mirror.config),
              snapshotStatus: request.excludeSnapshotStatus ? null : { clones: [] },
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
}
