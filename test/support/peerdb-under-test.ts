import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { it } from 'vitest';
import type { ClickHouseSettings } from '../servers/index.js';
import {
  startPeerDbDouble,
  type FlowStatus,
  type Knobs,
  type MirrorView,
  type PeerDbDouble,
  type RequestLogEntry,
  type TableMapping,
} from '../peerdb-double/index.js';

/**
 * A Flow API the tests did not start (a real PeerDB, or the double as a server of its own): the lifecycle and
 * fault tests then talk to it instead of starting the double. The cases that need the double's knobs or request
 * log are left out, and named in the output.
 */
export const sharedPeerDbUrl = process.env.ECHODB_TEST_PEERDB_URL?.replace(/\/+$/, '') || undefined;

/** `it` for a case that needs the PeerDB double's knobs: skipped, and named, when ECHODB_TEST_PEERDB_URL is set. */
export const itWithDouble = ((name: string, ...rest: Parameters<typeof it>[1][]) => {
  if (sharedPeerDbUrl === undefined) return it(name, ...(rest as [never]));
  console.log(`left out against ECHODB_TEST_PEERDB_URL (it turns the PeerDB test double's knobs): ${name}`);
  return it.skip(name, ...(rest as [never]));
}) as typeof it;

/**
 * The PeerDB of a test stack: the double, started here, or the Flow API at ECHODB_TEST_PEERDB_URL behind the
 * double's interface: reached through a proxy of this process that logs every request (as the double does), its
 * mirrors read through the Flow API (those of `sourcePeer` only: other stacks share it). Knobs it has none.
 * `activeSlots` is the double's option (PeerDbDoubleOptions.activeSlots); a real PeerDB holds its slots active anyway.
 */
export async function peerDbForTests(
  clickhouse: ClickHouseSettings,
  sourcePeer: string,
  options: { activeSlots?: boolean } = {},
): Promise<PeerDbDouble> {
  if (sharedPeerDbUrl === undefined) {
    // PeerDB's own durations (1-minute retries) at a hundredth.
    return startPeerDbDouble({ clickhouse, transitionMs: 30, timeScale: 0.01, activeSlots: options.activeSlots ?? false });
  }
  return sharedFlowApi(sharedPeerDbUrl, sourcePeer);
}

async function post<T>(url: string, path: string, body: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, body: (await response.json()) as T };
}

/** How often the shared Flow API's mirrors are read again. */
const REFRESH_MS = 300;

/** A reverse proxy to `target` on a free loopback port that logs each request as the double does. */
async function recordingProxy(target: string) {
  const requests: RequestLogEntry[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const entry: RequestLogEntry = { at: new Date(), method: req.method ?? 'GET', path: req.url ?? '/', body: undefined, status: undefined };
      try {
        entry.body = text === '' ? undefined : (JSON.parse(text) as unknown);
      } catch {
        // not JSON: logged without a body, as the double does
      }
      requests.push(entry);
      fetch(target + (req.url ?? '/'), {
        method: req.method,
        headers: text === '' ? undefined : { 'content-type': 'application/json' },
        body: text === '' ? undefined : text,
      }).then(
        async (answer) => {
          const body = await answer.text();
          entry.status = answer.status;
          res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
          res.end(body);
        },
        () => res.destroy(),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function sharedFlowApi(target: string, sourcePeer: string): Promise<PeerDbDouble> {
  const proxy = await recordingProxy(target);
  const { url } = proxy;
  let views: MirrorView[] = [];
  const refresh = async () => {
    const list = await fetch(`${target}/v1/mirrors/list`, { signal: AbortSignal.timeout(10_000) });
    const { mirrors = [] } = (await list.json()) as { mirrors?: { name: string; sourceName: string; destinationName: string }[] };
    const next: MirrorView[] = [];
    for (const mirror of mirrors.filter((m) => m.sourceName === sourcePeer)) {
      const { status, body } = await post<{
        currentFlowState: FlowStatus;
        cdcStatus?: { config?: { tableMappings?: TableMapping[] }; rowsSynced?: string };
      }>(target, '/v1/mirrors/status', { flowJobName: mirror.name, includeFlowInfo: true });
      if (status !== 200) continue;
      next.push({
        name: mirror.name,
        status: body.currentFlowState,
        tables: body.cdcStatus?.config?.tableMappings ?? [],
        slotName: `peerflow_slot_${mirror.name}`,
        publicationName: `peerflow_pub_${mirror.name}`,
        sourceName: mirror.sourceName,
        destinationName: mirror.destinationName,
        rowsSynced: Number(body.cdcStatus?.rowsSynced ?? 0),
        error: undefined,
        retrying: undefined,
      });
    }
    views = next;
  };
  await refresh();
  let stopped = false;
  const refreshing = (async () => {
    while (!stopped) {
      await new Promise((resolve) => setTimeout(resolve, REFRESH_MS));
      await refresh().catch(() => undefined);
    }
  })();
  const knobs = new Proxy({} as Knobs, {
    get: () => {
      throw new Error('this case needs the PeerDB test double\'s knobs; ECHODB_TEST_PEERDB_URL points the tests at another Flow API');
    },
    set: () => {
      throw new Error('this case needs the PeerDB test double\'s knobs; ECHODB_TEST_PEERDB_URL points the tests at another Flow API');
    },
  });
  return {
    url,
    requests: proxy.requests,
    knobs,
    mirrors: () => views,
    slotNames: () => views.map((view) => view.slotName),
    async waitForStatus(name, status, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const answer = await post<{ currentFlowState?: FlowStatus }>(target, '/v1/mirrors/status', { flowJobName: name });
        if (answer.body.currentFlowState === status) return;
        if (answer.body.currentFlowState === 'STATUS_FAILED') throw new Error(`mirror ${name} failed`);
        if (Date.now() > deadline) throw new Error(`mirror ${name} is ${answer.body.currentFlowState ?? 'gone'} after ${timeoutMs} ms, expected ${status}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    /** Drops this stack's mirrors (their slots would keep the test database from being dropped). */
    async close() {
      stopped = true;
      await refreshing;
      for (const { name } of views) {
        await post(target, '/v1/mirrors/state_change', { flowJobName: name, requestedFlowState: 'STATUS_TERMINATING' }).catch(() => undefined);
      }
      await proxy.close();
    },
  };
}
