import type { CircuitBreaker } from '../circuit-breaker.js';
import type { Config } from '../config.js';
import {
  MirrorAlreadyExists,
  MirrorNotFound,
  PeerDbError,
  PeerDbInvalidRequest,
  PeerDbUnavailable,
  PeerUnreachable,
} from '../workflow-safe/peerdb-errors.js';
import type {
  CdcFlowConfigUpdate,
  FlowConnectionConfigs,
  FlowStatus,
  ListMirrorsItem,
  MirrorLog,
  MirrorStatus,
  Peer,
  TableMapping,
} from './types.js';

export interface PeerDbClientOptions {
  /** The Flow API's HTTP address, e.g. http://flow-api:8113 */
  baseUrl: string;
  requestTimeoutMs: number;
  /**
   * How long a drop may take: PeerDB drops a failed mirror within the request (cancelling its workflow, up to
   * 2 minutes, then DropFlowWorkflow, up to 5: flow/cmd/handler.go shutdownFlow).
   */
  dropTimeoutMs: number;
  breaker: CircuitBreaker;
}

/**
 * PeerDB's Flow API over HTTP/JSON. Every call has a timeout and goes through the breaker; answers become typed
 * errors (see errors.ts). Idempotent operations turn "already exists" and "not found" into success.
 */
export class PeerDbClient {
  constructor(private readonly options: PeerDbClientOptions) {}

  /** A client with the configured address and timeouts. */
  static fromConfig({ apiUrl, requestTimeoutMs, dropTimeoutMs }: Config['peerdb'], breaker: CircuitBreaker): PeerDbClient {
    return new PeerDbClient({ baseUrl: apiUrl, requestTimeoutMs, dropTimeoutMs, breaker });
  }

  /**
   * Creates the peer, or updates it to this configuration. PeerDB validates it by connecting (peers/create runs
   * ValidatePeer): a database it cannot reach is PeerUnreachable, a wrong configuration PeerDbInvalidRequest.
   */
  async createOrUpdatePeer(peer: Peer): Promise<void> {
    const answer = await this.call<{ status?: string; message?: string }>('POST', '/v1/peers/create', { peer, allowUpdate: true });
    // flow/connectors/utils/peers.go answers a config it cannot use with 200 and status FAILED.
    if (answer.status === 'FAILED') {
      throw new PeerDbInvalidRequest(`PeerDB POST /v1/peers/create: 200 FAILED ${answer.message ?? ''}`.trim(), 200);
    }
  }

  /** Asks PeerDB whether it can use the peer now (it connects to it): the reason when it cannot. */
  async peerProblem(peer: Peer): Promise<string | undefined> {
    try {
      const answer = await this.call<{ status?: string; message?: string }>('POST', '/v1/peers/validate', { peer });
      return answer.status === 'VALID' ? undefined : answer.message || `status ${answer.status}`;
    } catch (error) {
      if (error instanceof PeerUnreachable || error instanceof PeerDbInvalidRequest) return messageOfError(error);
      throw error;
    }
  }

  /**
   * Creates a CDC mirror. `exists` when a mirror of that name is already there (its tables are not compared);
   * `dropping` when the previous mirror of that name is still being dropped (PeerDB's 409 "workflow already exists
   * for flow" while its status answers 404): try again shortly.
   */
  async createCdcMirror(connectionConfigs: FlowConnectionConfigs): Promise<'created' | 'exists' | 'dropping'> {
    try {
      await this.call('POST', '/v1/flows/cdc/create', { connectionConfigs, attachToExisting: false });
      return 'created';
    } catch (error) {
      if (error instanceof MirrorAlreadyExists) return error.stillDropping ? 'dropping' : 'exists';
      throw error;
    }
  }

  async pauseMirror(flowJobName: string): Promise<void> {
    await this.changeState(flowJobName, 'STATUS_PAUSED');
  }

  /** Resumes a paused mirror without changing it. */
  async resumeMirror(flowJobName: string): Promise<void> {
    await this.changeState(flowJobName, 'STATUS_RUNNING');
  }

  /**
   * Sends a table change to a paused mirror as one signal: the requested state is the current one (PAUSED), so
   * PeerDB signals only the update, and processing it resumes the mirror (flow/cmd/handler.go FlowStateChange,
   * flow/workflows/cdc_flow.go's pause loop). Asking for RUNNING would add a second signal, which the pause loop
   * may read first and resume without the change.
   */
  async updatePausedMirror(flowJobName: string, update: CdcFlowConfigUpdate): Promise<void> {
    await this.changeState(flowJobName, 'STATUS_PAUSED', { cdcFlowConfigUpdate: update });
  }

  /**
   * Asks PeerDB to drop the mirror; `gone` when there was none. A running mirror drops asynchronously; a failed
   * one within the request, which may take minutes (dropTimeoutMs).
   */
  async dropMirror(flowJobName: string): Promise<'dropping' | 'gone'> {
    try {
      await this.changeState(flowJobName, 'STATUS_TERMINATING', undefined, this.options.dropTimeoutMs);
      return 'dropping';
    } catch (error) {
      if (error instanceof MirrorNotFound) return 'gone';
      throw error;
    }
  }

  /**
   * The mirror's state alone, or null when PeerDB does not know it: the light status call, for polling (without
   * includeFlowInfo PeerDB reads only its catalog).
   */
  async mirrorState(flowJobName: string): Promise<FlowStatus | null> {
    return (await this.status(flowJobName, false))?.currentFlowState ?? null;
  }

  /** The mirror's status with its configuration (table mappings) and initial load, or null when PeerDB does not know it. */
  mirrorStatus(flowJobName: string): Promise<MirrorStatus | null> {
    return this.status(flowJobName, true);
  }

  /**
   * Cancels a table addition that cannot finish (PeerDB's CancelTableAddition): the mirror starts over RUNNING with
   * the tables it had plus the added ones whose snapshot completed. `replicating` must name every table the mirror
   * has (its status's mappings). Synchronous. Returns the mirror's tables afterwards.
   */
  async cancelTableAddition(flowJobName: string, replicating: TableMapping[], idempotencyKey: string): Promise<TableMapping[]> {
    const answer = await this.call<{ tablesAfterCancellation?: TableMapping[] }>('POST', '/v1/flows/cdc/cancel_table_addition', {
      flowJobName,
      currentlyReplicatingTables: replicating,
      idempotencyKey,
    });
    return answer.tablesAfterCancellation ?? [];
  }

  /** The newest errors PeerDB's activities logged for the mirror (its flow_errors), newest first. */
  async mirrorErrors(flowJobName: string, count = 5): Promise<MirrorLog[]> {
    const { errors } = await this.call<{ errors?: MirrorLog[] }>('POST', '/v1/mirrors/logs', {
      flowJobName,
      level: 'error',
      numPerPage: count,
    });
    return errors ?? [];
  }

  async listMirrors(): Promise<ListMirrorsItem[]> {
    const { mirrors } = await this.call<{ mirrors?: ListMirrorsItem[] }>('GET', '/v1/mirrors/list');
    return mirrors ?? [];
  }

  private async status(flowJobName: string, includeFlowInfo: boolean): Promise<MirrorStatus | null> {
    try {
      return await this.call<MirrorStatus>('POST', '/v1/mirrors/status', {
        flowJobName,
        includeFlowInfo,
        excludeBatches: true,
      });
    } catch (error) {
      if (error instanceof MirrorNotFound) return null;
      throw error;
    }
  }

  private async changeState(
    flowJobName: string,
    requestedFlowState: FlowStatus,
    flowConfigUpdate?: { cdcFlowConfigUpdate: CdcFlowConfigUpdate },
    timeoutMs?: number,
  ): Promise<void> {
    await this.call(
      'POST',
      '/v1/mirrors/state_change',
      { flowJobName, requestedFlowState, ...(flowConfigUpdate && { flowConfigUpdate }) },
      timeoutMs,
    );
  }

  private call<T>(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = this.options.requestTimeoutMs): Promise<T> {
    return this.options.breaker.execute(() => this.send<T>(method, path, body, timeoutMs));
  }

  private async send<T>(method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number): Promise<T> {
    const what = `PeerDB ${method} ${path}`;
    let response: Response;
    try {
      response = await fetch(`${this.options.baseUrl}${path}`, {
        method,
        headers: body === undefined ? undefined : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const reason = error instanceof Error && error.name === 'TimeoutError'
        ? `no answer within ${timeoutMs} ms`
        : describeNetworkError(error);
      throw new PeerDbUnavailable(`${what}: ${reason}`);
    }
    const text = await response.text().catch(() => '');
    if (response.ok) return (text ? JSON.parse(text) : {}) as T;
    const message = messageOf(text);
    throw errorFor(response.status, message, `${what}: ${response.status} ${message}`);
  }
}

/**
 * A database PeerDB could not connect to: the network errors of Go's net package and pgx, as PeerDB passes them
 * on (flow/cmd/validate_peer.go, validate_mirror.go "failed to create source connector").
 */
const UNREACHABLE = /connection refused|i\/o timeout|no such host|dial (error|tcp)|context deadline exceeded|connection reset|network is unreachable|no route to host|server closed the connection|unexpected EOF|\bEOF\b|the database system is (starting up|shutting down|in recovery mode)|too many (connections|clients)/i;
/** ... unless it answered and refused the login or the database: a configuration to fix, not an outage. */
const MISCONFIGURED = /password authentication failed|authentication failed|Wrong password|no pg_hba\.conf entry|permission denied|does not exist|SQLSTATE 28/i;

/**
 * PeerDB answers a mirror that fails validation with gRPC Internal, so HTTP 500 `invalid mirror: rpc error: code
 * = <code> desc = ...` (flow/cmd/handler.go CreateCDCFlow): FailedPrecondition and the like are the request's
 * fault and no retry fixes them; Unavailable is maintenance mode, an outage.
 */
const REJECTED_AS_INTERNAL = /invalid mirror|invalid peer|FailedPrecondition|InvalidArgument|does not exist|not found/i;

/** What PeerDB's answer means for the caller. Exported for its tests. */
export function errorFor(status: number, peerDbMessage: string, message: string): PeerDbError {
  if (status === 404) return new MirrorNotFound(message, status);
  if (status === 409) return new MirrorAlreadyExists(message, status);
  if (/code = Unavailable/.test(peerDbMessage)) return new PeerDbUnavailable(message, status);
  if ((status === 400 || status === 500) && UNREACHABLE.test(peerDbMessage) && !MISCONFIGURED.test(peerDbMessage)) {
    return new PeerUnreachable(message, status);
  }
  if (status === 500 && REJECTED_AS_INTERNAL.test(peerDbMessage)) return new PeerDbInvalidRequest(message, status);
  if (status === 408 || status === 429 || status >= 500) return new PeerDbUnavailable(message, status);
  return new PeerDbInvalidRequest(message, status);
}

/** grpc-gateway answers errors as {"code": n, "message": "..."}. */
function messageOf(text: string): string {
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON: a proxy's page, say
  }
  return text.slice(0, 500);
}

/** The part of a PeerDbError after "PeerDB <method> <path>: <status> ". */
function messageOfError(error: PeerDbError): string {
  return error.message.replace(/^PeerDB \S+ \S+: \d+ /, '');
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}

/** PeerDB itself is down or overloaded: counted by the breaker. */
export function isPeerDbOutage(error: unknown): boolean {
  return error instanceof PeerDbUnavailable;
}

/** Worth trying again as it is: PeerDB, or a database it needs, is away for now. */
export function isTransient(error: unknown): boolean {
  return error instanceof PeerDbUnavailable || error instanceof PeerUnreachable;
}
