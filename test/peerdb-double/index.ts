/**
 * The PeerDB Flow API test double: an HTTP server that answers like PeerDB's flow-api (v0.37, grpc-gateway JSON)
 * for the routes EchoDB uses, keeps mirrors through PeerDB's asynchronous states, and copies an initial snapshot
 * of each source table into a PeerDB-shaped ClickHouse table. It does no CDC: rows changed after the snapshot are
 * not mirrored (with activeSlots, they are streamed from the slot and thrown away).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from '@clickhouse/client';
import { Delays } from './delays.js';
import { FlowApi } from './flow-api.js';
import type { FlowStatus, Peer, TableMapping } from './messages.js';
import { Mirrors, type Mirror } from './mirrors.js';
import { createApp, defaultKnobs, type Knobs, type RequestLogEntry } from './server.js';
import { SnapshotCopier } from './snapshot.js';
import { pgRecvlogicalBinary, SlotPulls } from './slot-pull.js';
import { replicationNames } from './source-replication.js';

export { defaultKnobs };
export type { FlowStatus, Knobs, RequestLogEntry, TableMapping };

export interface PeerDbDoubleOptions {
  /**
   * ClickHouse HTTP(S) interface the double writes destination tables into (`ca`: PEM of the CA that signed an
   * https server's certificate). Real PeerDB speaks the native protocol to the peer's host and port: the double
   * only does that protocol's handshake there, when it validates the peer.
   */
  clickhouse: { url: string; user: string; password: string; ca?: string };
  /** Delay of each asynchronous state transition (pause, modify, drop, setup), default 50 ms. */
  transitionMs?: number;
  /**
   * PeerDB's own durations (retry intervals such as setup's 1-minute first retry, DropFlowWorkflow's sleeps) are
   * multiplied by this; default 1, PeerDB's real timing. Tests shorten them.
   */
  timeScale?: number;
  /** The port to listen on (default: a free one). */
  port?: number;
  /**
   * Hold each RUNNING mirror's slot active, as PeerDB's CDC pull does: a real replication client (PostgreSQL's
   * pg_recvlogical, one walsender per running mirror) streams from the slot and confirms what it received, so
   * confirmed_flush_lsn advances; a pause, a drop or close() ends it (the slot then inactive, retaining WAL), a
   * resume starts it again, and one that dies while the mirror runs is started again after PeerDB's delay
   * (1 minute times timeScale, at least 100 ms), its error in the mirror's logs. Default false: nothing consumes
   * the slots (they retain WAL from creation) and no client runs, for tests that make hundreds of mirrors.
   * Throws at start when pg_recvlogical is not installed. See slot-pull.ts.
   */
  activeSlots?: boolean;
}

export interface MirrorView {
  name: string;
  status: FlowStatus;
  /** The current table mappings, in their JSON shape. */
  tables: TableMapping[];
  slotName: string;
  publicationName: string;
  sourceName: string;
  destinationName: string;
  rowsSynced: number;
  /** Why the mirror is STATUS_FAILED. */
  error: string | undefined;
  /** The last error of a step PeerDB keeps retrying (why a mirror stays in SETUP or SNAPSHOT). */
  retrying: string | undefined;
}

export interface PeerDbDouble {
  /** http://127.0.0.1:<free port> */
  url: string;
  /** Every request in arrival order. */
  requests: RequestLogEntry[];
  /** Mutable, read on every request. */
  knobs: Knobs;
  /** The mirrors not yet dropped, for assertions. */
  mirrors(): MirrorView[];
  /** Replication slot names in use: one per mirror that finished setup and is not dropped. */
  slotNames(): string[];
  /** Resolves when the mirror reaches `status`; rejects on timeout, or when it fails while another status is awaited. */
  waitForStatus(mirror: string, status: FlowStatus, timeoutMs?: number): Promise<void>;
  /** Stops the server (open and hanging sockets included), all timers, all copies and all pulls (activeSlots). */
  close(): Promise<void>;
}

/**
 * The source tables a logged request put into a mirror: a successful create's mappings, or a successful edit's
 * additional tables. For "no table added twice" assertions.
 */
export function tablesAddedBy(request: RequestLogEntry): string[] {
  if ((request.status ?? 500) >= 300) return [];
  const body = request.body as {
    connectionConfigs?: { tableMappings?: { sourceTableIdentifier: string }[] };
    flowConfigUpdate?: { cdcFlowConfigUpdate?: { additionalTables?: { sourceTableIdentifier: string }[] } };
  } | undefined;
  const mappings =
    body?.connectionConfigs?.tableMappings ?? body?.flowConfigUpdate?.cdcFlowConfigUpdate?.additionalTables ?? [];
  return mappings.map((m) => m.sourceTableIdentifier);
}

export async function startPeerDbDouble(options: PeerDbDoubleOptions): Promise<PeerDbDouble> {
  const knobs = defaultKnobs();
  const requests: RequestLogEntry[] = [];
  const delays = new Delays();
  const clickhouse = createClient({
    url: options.clickhouse.url,
    username: options.clickhouse.user,
    password: options.clickhouse.password,
    request_timeout: 30_000,
    ...(options.clickhouse.ca === undefined ? {} : { tls: { ca_cert: Buffer.from(options.clickhouse.ca, 'utf8') } }),
  });
  const peers = new Map<string, Peer>();
  const pulls = options.activeSlots ? new SlotPulls(pgRecvlogicalBinary()) : undefined;
  const mirrors = new Mirrors({
    peers,
    copier: new SnapshotCopier(clickhouse),
    clickhouse,
    delays,
    pulls,
    transitionMs: options.transitionMs ?? 50,
    timeScale: options.timeScale ?? 1,
    knobs: () => knobs,
  });
  const api = new FlowApi(peers, mirrors, clickhouse, () => knobs.maintenance);
  const server = http.createServer(createApp({ api, knobs, requests, delays }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    knobs,
    mirrors: () => mirrors.list().map(view),
    slotNames: () => mirrors.list().filter((mirror) => mirror.holdsSlot).map((mirror) => view(mirror).slotName),
    async waitForStatus(name, status, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const mirror = mirrors.get(name);
        if (mirror?.status === status) return;
        if (mirror?.status === 'STATUS_FAILED') throw new Error(`mirror ${name} failed: ${mirror.error}`);
        if (Date.now() > deadline) {
          throw new Error(`mirror ${name} is ${mirror?.status ?? 'gone'} after ${timeoutMs} ms, expected ${status}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    async close() {
      delays.close();
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      // Stops the pulls too (activeSlots).
      await mirrors.close();
      // As if PeerDB dropped what it still holds: a database with a logical slot cannot be dropped after the test.
      await mirrors.releaseAll();
      await clickhouse.close();
      await closed;
    },
  };
}

function view(mirror: Mirror): MirrorView {
  const { config } = mirror;
  return {
    name: mirror.name,
    status: mirror.status,
    tables: structuredClone(config.tableMappings),
    slotName: replicationNames(config).slot,
    publicationName: replicationNames(config).publication,
    sourceName: config.sourceName,
    destinationName: config.destinationName,
    rowsSynced: mirror.rowsSynced,
    error: mirror.error,
    retrying: mirror.retrying,
  };
}
