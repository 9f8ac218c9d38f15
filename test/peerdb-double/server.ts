import type { IncomingMessage } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Delays } from './delays.js';
import { FlowApiError, injectedError, internal, invalidArgument, notFound, unimplemented } from './errors.js';
import type { FlowApi } from './flow-api.js';
import { MessageFields, toJsonNames } from './request-fields.js';

export interface RequestLogEntry {
  at: Date;
  method: string;
  path: string;
  /** The parsed JSON body; undefined when there was none or it was not JSON. */
  body: unknown;
  /** The status answered; undefined while (or if never) answered. */
  status: number | undefined;
}

/** Faults to inject; read on every request, so a test changes them at any time. */
export interface Knobs {
  /** Added before each response. */
  latencyMs: number;
  /** 0..1: the share of requests answered 503 UNAVAILABLE, at random. */
  errorRate: number;
  /** Epoch ms: every request is answered 503 until then. */
  failUntil: number | undefined;
  /** The next `count` requests are answered `status`. */
  failNext: { count: number; status: number } | undefined;
  /** Requests are accepted but never answered (client timeouts). */
  hang: boolean;
  /** Asynchronous state transitions stop progressing (e.g. a mirror stays STATUS_PAUSING). */
  stuck: boolean;
  /** PeerDB's maintenance mode: creates answer 500 `invalid mirror: ... Unavailable`, state changes 503. */
  maintenance: boolean;
  /** How long a signal takes to reach a mirror's workflow (a workflow task): state_change returns before. */
  signalDelayMs: number;
  /** After a drop's catalog row is gone (404), how long its workflow still runs (a create meanwhile is 409). */
  dropLingerMs: number;
  /** How long the synchronous drop of a failed mirror keeps the request (PeerDB: seconds, up to about 7 minutes). */
  failedDropMs: number;
  /** Source table identifiers whose initial load fails (as when ClickHouse rejects its rows). */
  snapshotFails: string[];
  /**
   * The next `count` requests to `path` are carried out, but their answers are lost: the connection is closed
   * instead. What a caller sees when a proxy or the network drops a connection after PeerDB acted, or when its
   * own request timeout ends a request PeerDB went on to complete.
   */
  loseAnswers: { path: string; count: number } | undefined;
}

/** The knobs at rest: no fault injected; PeerDB's usual timings. */
export function defaultKnobs(): Knobs {
  return {
    latencyMs: 0,
    errorRate: 0,
    failUntil: undefined,
    failNext: undefined,
    hang: false,
    stuck: false,
    maintenance: false,
    signalDelayMs: 20,
    dropLingerMs: 200,
    failedDropMs: 3000,
    snapshotFails: [],
    loseAnswers: undefined,
  };
}

/** The Flow API routes the double answers (paths from protos/route.proto). */
const ROUTES: { method: 'get' | 'post'; path: string; rpc: (api: FlowApi, body: MessageFields) => unknown }[] = [
  { method: 'post', path: '/v1/peers/validate', rpc: (api, body) => api.validatePeer(body) },
  { method: 'post', path: '/v1/peers/create', rpc: (api, body) => api.createPeer(body) },
  { method: 'post', path: '/v1/flows/cdc/cancel_table_addition', rpc: (api, body) => api.cancelTableAddition(body) },
  { method: 'post', path: '/v1/flows/cdc/create', rpc: (api, body) => api.createCdcFlow(body) },
  { method: 'post', path: '/v1/mirrors/state_change', rpc: (api, body) => api.flowStateChange(body) },
  { method: 'post', path: '/v1/mirrors/status', rpc: (api, body) => api.mirrorStatus(body) },
  { method: 'post', path: '/v1/mirrors/logs', rpc: (api, body) => api.listMirrorLogs(body) },
  { method: 'get', path: '/v1/mirrors/list', rpc: (api) => api.listMirrors() },
  { method: 'get', path: '/v1/mirrors/names', rpc: (api) => api.listMirrorNames() },
];

/**
 * The HTTP side, as grpc-gateway serves it: every request is logged, then the knobs may hang it or answer it
 * with an injected error (before any side effect), then it reaches its RPC. Errors are `{code, message, details}`.
 */
export function createApp(deps: { api: FlowApi; knobs: Knobs; requests: RequestLogEntry[]; delays: Delays }) {
  const { api, knobs, requests, delays } = deps;
  const app = express();
  app.set('case sensitive routing', true);
  app.set('strict routing', true);

  app.use(async (req: Request, res: Response, next: NextFunction) => {
    const at = new Date();
    const text = await readBody(req);
    const body = parseJson(text);
    const entry: RequestLogEntry = { at, method: req.method, path: req.path, body, status: undefined };
    requests.push(entry);
    res.on('finish', () => {
      entry.status = res.statusCode;
    });
    if (knobs.hang) return;
    const injected = injectedStatus(knobs);
    if (injected !== undefined) {
      const { status, body: errorBody } = injectedError(injected);
      res.status(status).json(errorBody);
      return;
    }
    if (knobs.latencyMs > 0 && !(await delays.wait(knobs.latencyMs))) return;
    if (text.trim() !== '' && body === undefined) throw invalidArgument('proto: syntax error: the request body is not JSON');
    res.locals.body = body;
    next();
  });

  for (const route of ROUTES) {
    app[route.method](route.path, async (_req: Request, res: Response) => {
      const outcome = await Promise.resolve()
        .then(() => route.rpc(api, MessageFields.of(toJsonNames(res.locals.body))))
        .then((answer: unknown) => ({ answer }), (error: unknown) => ({ error }));
      const lost = knobs.loseAnswers;
      if (lost?.path === route.path && lost.count > 0) {
        knobs.loseAnswers = lost.count > 1 ? { ...lost, count: lost.count - 1 } : undefined;
        res.socket?.destroy();
        return;
      }
      if ('error' in outcome) throw outcome.error;
      res.json(outcome.answer);
    });
  }
  // grpc-gateway answers a known path asked with another method with Unimplemented.
  app.all(
    ROUTES.map((route) => route.path),
    () => {
      throw unimplemented('Method Not Allowed');
    },
  );
  app.use(() => {
    throw notFound('Not Found');
  });
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const apiError = error instanceof FlowApiError ? error : internal(error instanceof Error ? error.message : String(error));
    res.status(apiError.httpStatus).json(apiError.body());
  });
  return app;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return text.trim() === '' ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

/** The status a knob imposes on this request, if any; failNext counts down. */
function injectedStatus(knobs: Knobs): number | undefined {
  if (knobs.failNext && knobs.failNext.count > 0) {
    const { count, status } = knobs.failNext;
    knobs.failNext = count > 1 ? { count: count - 1, status } : undefined;
    return status;
  }
  if (knobs.failUntil !== undefined && Date.now() < knobs.failUntil) return 503;
  if (knobs.errorRate > 0 && Math.random() < knobs.errorRate) return 503;
  return undefined;
}
