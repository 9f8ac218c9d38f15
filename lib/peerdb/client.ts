import type { CircuitBreaker } from '../circuit-breaker.js';
import {
  MirrorAlreadyExists,
  MirrorNotFound,
  PeerDbError,
  PeerDbInvalidRequest,
  PeerDbUnavailable,
} from './errors.js';
import type {
  CdcFlowConfigUpdate,
  FlowConnectionConfigs,
  FlowStatus,
  ListMirrorsItem,
  MirrorStatus,
  Peer,
} from './types.js';

export interface PeerDbClientOptions {
  /** The Flow API's HTTP address, e.g. http://flow-api:8113 */
  baseUrl: string;
  requestTimeoutMs: number;
  breaker: CircuitBreaker;
}

/**
 * PeerDB's Flow API over HTTP/JSON. Every call has a timeout and goes through the breaker; answers become typed
 * errors (see errors.ts). Idempotent operations turn "already exists" and "not found" into success.
 */
export class PeerDbClient {
  constructor(private readonly options: PeerDbClientOptions) {}

  /** Creates the peer, or updates it to this configuration. */
  async createOrUpdatePeer(peer: Peer): Promise<void> {
    await this.call('POST', '/v1/peers/create', { peer, allowUpdate: true });
  }

  /** Creates a CDC mirror; `exists` when a mirror of that name is already there (its tables are not compared). */
  async createCdcMirror(connectionConfigs: FlowConnectionConfigs): Promise<'created' | 'exists'> {
    try {
      await this.call('POST', '/v1/flows/cdc/create', { connectionConfigs, attachToExisting: false });
      return 'created';
    } catch (error) {
      if (error instanceof MirrorAlreadyExists) return 'exists';
      throw error;
    }
  }

  async pauseMirror(flowJobName: string): Promise<void> {
    await this.changeState(flowJobName, 'STATUS_PAUSED');
  }

  /** Resumes a paused mirror, applying `update` (tables to add and remove) on the way. */
  async resumeMirror(flowJobName: string, update?: CdcFlowConfigUpdate): Promise<void> {
    await this.changeState(flowJobName, 'STATUS_RUNNING', update && { cdcFlowConfigUpdate: update });
  }

  /** Asks PeerDB to drop the mirror; `gone` when there was none. Dropping completes asynchronously. */
  async dropMirror(flowJobName: string): Promise<'dropping' | 'gone'> {
    try {
      await this.changeState(flowJobName, 'STATUS_TERMINATING');
      return 'dropping';
    } catch (error) {
      if (error instanceof MirrorNotFound) return 'gone';
      throw error;
    }
  }

  /** The mirror's status, or null when PeerDB does not know it (never created, or dropped). */
  async mirrorStatus(flowJobName: string): Promise<MirrorStatus | null> {
    try {
      return await this.call<MirrorStatus>('POST', '/v1/mirrors/status', {
        flowJobName,
        includeFlowInfo: true,
        excludeBatches: true,
      });
    } catch (error) {
      if (error instanceof MirrorNotFound) return null;
      throw error;
    }
  }

  async listMirrors(): Promise<ListMirrorsItem[]> {
    const { mirrors } = await this.call<{ mirrors?: ListMirrorsItem[] }>('GET', '/v1/mirrors/list');
    return mirrors ?? [];
  }

  private async changeState(
    flowJobName: string,
    requestedFlowState: FlowStatus,
    flowConfigUpdate?: { cdcFlowConfigUpdate: CdcFlowConfigUpdate },
  ): Promise<void> {
    await this.call('POST', '/v1/mirrors/state_change', {
      flowJobName,
      requestedFlowState,
      ...(flowConfigUpdate && { flowConfigUpdate }),
    });
  }

  private call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    return this.options.breaker.execute(() => this.send<T>(method, path, body));
  }

  private async send<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const what = `PeerDB ${method} ${path}`;
    let response: Response;
    try {
      response = await fetch(`${this.options.baseUrl}${path}`, {
        method,
        headers: body === undefined ? undefined : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.requestTimeoutMs),
      });
    } catch (error) {
      const reason = error instanceof Error && error.name === 'TimeoutError'
        ? `no answer within ${this.options.requestTimeoutMs} ms`
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
 * PeerDB answers a mirror that fails validation (missing source table, non-empty destination, unknown peer)
 * with gRPC Internal, so HTTP 500: recognisable by its message, and no retry will fix it.
 */
const REJECTED_AS_INTERNAL = /invalid mirror|invalid peer|FailedPrecondition|InvalidArgument|does not exist|not found/i;

function errorFor(status: number, peerDbMessage: string, message: string): PeerDbError {
  if (status === 404) return new MirrorNotFound(message, status);
  if (status === 409) return new MirrorAlreadyExists(message, status);
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

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}

export function isPeerDbOutage(error: unknown): boolean {
  return error instanceof PeerDbUnavailable;
}
