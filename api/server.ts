import crypto from 'node:crypto';
import type { Server } from 'node:http';
import { ServiceError } from '@temporalio/client';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { CircuitBreaker } from '../lib/circuit-breaker.js';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import { CircuitOpen } from '../lib/workflow-safe/peerdb-errors.js';
import { isPostgresOutage } from '../lib/postgres.js';
import type { SourceQuery } from '../lib/mirrored-tables.js';
import { qualifiedName } from '../lib/workflow-safe/workflow-ids.js';
import type { LeadershipState } from '../listener/leader-election.js';
import type { DdlEventRow } from '../sql/ddl-events.js';
import type { DiffResult } from '../workflows/diff-model.js';
import type { VerificationResult, VerifyAllReport } from '../workflows/model.js';
import { diffJson, isDiffResult, startDiff } from './diff.js';
import { mirrorReplicationJson, replicationExtrasJson } from './replication.js';
import { readReplicationHealth } from '../lib/replication-slots.js';
import { checkReadiness, type ReadinessDependencies } from './readiness.js';
import {
  EVENT_STATUSES,
  durableFigures,
  lastMirrorFailure,
  mirrorsOverview,
  unmirroredJson,
  waitJson,
  operationJson,
  outboxEvents,
  verificationRowJson,
  type EventStatus,
} from './state.js';
import {
  UnknownTable,
  findMirroredTable,
  isVerifyAllReport,
  resultWithin,
  runState,
  startVerify,
  startVerifyAll,
  verificationJson,
  verifyAllJson,
  verifyTablesJson,
  type VerifyContext,
} from './verification.js';

export interface ApiDependencies extends ReadinessDependencies {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  breakers: { peerdb: CircuitBreaker; postgres: CircuitBreaker };
  /** Queries on the source database through the PostgreSQL circuit breaker. */
  query: SourceQuery;
  roles: readonly string[];
  /** This process's listener, when it runs one. */
  leadership?: { state(): LeadershipState };
  /** This process's Temporal worker state (RUNNING, FAILED, ...), when it runs one. */
  workerState?: () => string;
  /** Where the Temporal SDK's Prometheus exporter of this process answers, when the worker runs here. */
  sdkMetricsUrl?: string;
}

/** A request parameter that is missing or malformed: 400, with the reason. */
class BadRequest extends Error {}

/** The query parameters each route takes; any other is refused, so that a misspelled one is not ignored. */
function allowedParameters(path: string): readonly string[] {
  if (path.startsWith('/verifications/')) return ['run_id'];
  return { '/verify': ['schema', 'table', 'wait'], '/diff': ['schema', 'table', 'wait'], '/verify-all': ['wait'], '/events': ['status', 'limit', 'before_id'] }[path] ?? [];
}

function single(req: Request, name: string): string | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new BadRequest(`${name}: give it once, as a plain value`);
  return value;
}

/** A PostgreSQL name as the catalog holds it: 1 to 63 bytes, no NUL. Any such name is accepted. */
function identifier(req: Request, name: string): string {
  const value = single(req, name);
  if (value === undefined || value === '') throw new BadRequest(`${name}: required (a PostgreSQL ${name} name)`);
  if (Buffer.byteLength(value) > 63) throw new BadRequest(`${name}: longer than PostgreSQL's 63-byte names`);
  if (value.includes('\0')) throw new BadRequest(`${name}: contains a NUL character`);
  return value;
}

function wait(req: Request, fallbackMs: number): number {
  const value = single(req, 'wait');
  if (value === undefined) return fallbackMs;
  const seconds = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!(seconds <= 3600)) throw new BadRequest(`wait: "${value}" is not a number of seconds from 0 to 3600`);
  return seconds * 1000;
}

function integer(req: Request, name: string, min: number, max: number): number | undefined {
  const value = single(req, name);
  if (value === undefined) return undefined;
  const n = /^\d{1,19}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new BadRequest(`${name}: "${value}" is not an integer from ${min} to ${max}`);
  return n;
}

/** The same digest of both sides makes the comparison constant-time whatever the lengths. */
function tokenMatches(given: string, expected: string): boolean {
  const digest = (text: string) => crypto.createHash('sha256').update(text).digest();
  return crypto.timingSafeEqual(digest(given), digest(expected));
}

const eventJson = (row: DdlEventRow) => ({
  id: Number(row.id),
  operation: row.operation,
  schema: row.schema_name,
  table: row.table_name,
  old_schema: row.old_schema_name,
  old_table: row.old_table_name,
  command_tag: row.command_tag,
  created_at: row.created_at.toISOString(),
  status: row.status,
  dispatched_at: row.dispatched_at?.toISOString() ?? null,
  workflow_id: row.workflow_id,
  handled_by: row.handled_by,
  skip_reason: row.skip_reason,
  error: row.error,
  failed_attempts: row.failed_attempts,
});

/**
 * The HTTP API: liveness and readiness, the original manual's JSON metrics and Prometheus text, on-demand
 * verification, and read-only views of the mirrors and the outbox. It starts workflows and reads EchoDB's
 * tables; it never changes data itself.
 */
export function createApiApp(deps: ApiDependencies): express.Express {
  const { config, logger, metrics, breakers, query, temporal } = deps;
  const verifyContext: VerifyContext = { config, temporal };
  const startedAt = Date.now();
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  app.use((req, res, next) => {
    const began = performance.now();
    res.on('finish', () => {
      logger.debug({ method: req.method, path: req.path, status: res.statusCode, ms: Math.round(performance.now() - began) }, 'api: request');
    });
    next();
  });

  app.get('/health', (_req, res) => {
    const worker = deps.workerState?.();
    const healthy = worker === undefined || !['FAILED', 'STOPPED'].includes(worker);
    res.status(healthy ? 200 : 503).json({
      status: healthy ? 'ok' : 'failing',
      worker_id: config.workerId,
      roles: deps.roles,
      uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
      ...(worker !== undefined && { worker_state: worker }),
    });
  });

  app.get('/ready', async (_req, res) => {
    const readiness = await checkReadiness(deps);
    res.status(readiness.ready ? 200 : 503).json(readiness);
  });

  if (config.api.token !== undefined) {
    const token = config.api.token;
    app.use((req, res, next) => {
      const given = /^Bearer (.+)$/i.exec(req.get('authorization') ?? '')?.[1];
      if (given !== undefined && tokenMatches(given, token)) return next();
      res.set('WWW-Authenticate', 'Bearer realm="echodb"')
        .status(401)
        .json({ error: 'this endpoint needs the header Authorization: Bearer <API_TOKEN>' });
    });
  }

  app.use((req, _res, next) => {
    const allowed = allowedParameters(req.path);
    const unknown = Object.keys(req.query).filter((name) => !allowed.includes(name));
    if (unknown.length > 0) {
      throw new BadRequest(`unknown parameter ${unknown.join(', ')}; ${req.path} takes ${allowed.join(', ') || 'none'}`);
    }
    next();
  });

  app.get('/metrics', async (_req, res) => {
    let figures: Awaited<ReturnType<typeof durableFigures>> | undefined;
    let lastError: string | null;
    try {
      const [durable, failure] = await Promise.all([durableFigures(query), lastMirrorFailure(query)]);
      figures = durable;
      lastError = failure && `${failure.created_at.toISOString()} ${failure.mirror} ${failure.operation}: ${failure.error}`;
    } catch (error) {
      lastError = `PostgreSQL: ${error instanceof Error ? error.message : String(error)}`;
    }
    const count = (operation: string | null, result: string) =>
      figures?.mirrorOperations
        .filter((row) => (operation === null || row.operation === operation) && row.result === result)
        .reduce((sum, row) => sum + row.count, 0) ?? null;
    res.json({
      running: true,
      connected: figures !== undefined,
      worker_id: config.workerId,
      is_leader: deps.leadership?.state().isLeader ?? false,
      mirrors_created: count('create', 'succeeded'),
      mirrors_dropped: count('drop', 'succeeded'),
      mirrors_failed: count(null, 'failed'),
      last_error: lastError,
      uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
      circuit_breakers: { peerdb_api: breakers.peerdb.snapshot(), postgres_connection: breakers.postgres.snapshot() },
      roles: deps.roles,
    });
  });

  app.get('/metrics/prometheus', async (_req, res) => {
    const [durable, replication] = await Promise.allSettled([durableFigures(query), readReplicationHealth(query)]);
    if (durable.status === 'fulfilled') metrics.setDurable(durable.value);
    else logger.warn({ err: durable.reason }, 'api: durable metrics unavailable; serving the last values read');
    metrics.setReplication(replication.status === 'fulfilled' ? replication.value : null);
    if (replication.status === 'rejected') logger.warn({ err: replication.reason }, 'api: replication slots unreadable');
    let text = await metrics.registry.metrics();
    if (deps.sdkMetricsUrl !== undefined) {
      try {
        const sdk = await fetch(deps.sdkMetricsUrl, { signal: AbortSignal.timeout(2000) });
        if (sdk.ok) text += `\n${await sdk.text()}`;
      } catch (error) {
        logger.warn({ err: error }, "api: the Temporal SDK's metrics are unavailable");
      }
    }
    res.type(metrics.registry.contentType).send(text);
  });

  app.get('/verify', async (req, res) => {
    const ref = { schema: identifier(req, 'schema'), table: identifier(req, 'table') };
    const waitMs = wait(req, config.api.verifyWaitMs);
    const table = await findMirroredTable(query, ref);
    const handle = await startVerify(verifyContext, table);
    const result = await resultWithin<VerificationResult>(temporal, handle, waitMs);
    if (result !== undefined) return void res.json(verificationJson(result));
    res.status(202).json(pending(handle.workflowId, handle.firstExecutionRunId, `verification of ${qualifiedName(ref)}`));
  });

  app.get('/diff', async (req, res) => {
    const ref = { schema: identifier(req, 'schema'), table: identifier(req, 'table') };
    const waitMs = wait(req, config.api.verifyWaitMs);
    const table = await findMirroredTable(query, ref);
    const handle = await startDiff(verifyContext, table);
    const result = await resultWithin<DiffResult>(temporal, handle, waitMs);
    if (result !== undefined) return void res.json(diffJson(result));
    res.status(202).json(pending(handle.workflowId, handle.firstExecutionRunId, `row diff of ${qualifiedName(ref)}`));
  });

  app.get('/verify-all', async (req, res) => {
    const waitMs = wait(req, config.api.verifyWaitMs);
    const handle = await startVerifyAll(verifyContext);
    const report = await resultWithin<VerifyAllReport>(temporal, handle, waitMs);
    if (report !== undefined) return void res.json(verifyAllJson(report, handle.workflowId));
    res.status(202).json(pending(handle.workflowId, handle.firstExecutionRunId, 'verification of every mirrored table'));
  });

  app.get('/verifications/:workflowId', async (req, res) => {
    const { workflowId } = req.params;
    const runId = single(req, 'run_id');
    const run = await runState<VerificationResult | VerificationResult[] | VerifyAllReport | DiffResult>(temporal, workflowId, runId);
    switch (run.state) {
      case 'unknown':
        return void res.status(404).json({ error: `no verify, verify-all or diff workflow ${workflowId}` });
      case 'running':
        return void res.status(202).json(pending(workflowId, runId, 'verification'));
      case 'failed':
        return void res.status(500).json({ workflow_id: workflowId, error: run.error });
      case 'completed':
        if (Array.isArray(run.result)) return void res.json(verifyTablesJson(run.result, workflowId));
        if (isDiffResult(run.result)) return void res.json(diffJson(run.result));
        return void res.json(isVerifyAllReport(run.result) ? verifyAllJson(run.result, workflowId) : verificationJson(run.result));
    }
  });

  app.get('/mirrors', async (_req, res) => {
    const [overview, peerdbMirrors, replication] = await Promise.all([
      mirrorsOverview(query),
      deps.peerdb.listMirrors().then(
        (mirrors) => new Map(mirrors.map((mirror) => [mirror.name, mirror.status])),
        (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
      ),
      readReplicationHealth(query).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error)))),
    ]);
    const readable = replication instanceof Error ? null : replication;
    res.json({
      mirrors: overview.map(({ mirror, tables, lastOperation, waiting, unmirrored }) => ({
        mirror,
        peerdb: peerdbMirrors instanceof Error
          ? { state: null, error: `PeerDB: ${peerdbMirrors.message}` }
          : { state: peerdbMirrors.get(mirror) ?? 'not found', error: null },
        tables: tables.map(({ table, lastVerification }) => ({
          table: qualifiedName(table),
          schema: table.schema,
          name: table.table,
          destination: table.destination,
          last_verification: lastVerification && verificationRowJson(lastVerification),
        })),
        last_operation: lastOperation && operationJson(lastOperation),
        waiting: waiting && waitJson(waiting),
        unmirrored: unmirrored.map(unmirroredJson),
        replication: readable && mirrorReplicationJson(readable, mirror),
      })),
      ...replicationExtrasJson(replication),
    });
  });

  app.get('/events', async (req, res) => {
    const status = single(req, 'status');
    if (status !== undefined && !(EVENT_STATUSES as readonly string[]).includes(status)) {
      throw new BadRequest(`status: "${status}" is not one of ${EVENT_STATUSES.join(', ')}`);
    }
    const limit = integer(req, 'limit', 1, 1000) ?? 100;
    const beforeId = integer(req, 'before_id', 1, Number.MAX_SAFE_INTEGER);
    const rows = await outboxEvents(query, {
      ...(status !== undefined && { status: status as EventStatus }),
      limit,
      ...(beforeId !== undefined && { beforeId: String(beforeId) }),
    });
    const last = rows[rows.length - 1];
    const next = rows.length === limit && last !== undefined
      ? `/events?${new URLSearchParams({ ...(status !== undefined && { status }), limit: String(limit), before_id: last.id }).toString()}`
      : null;
    res.json({ events: rows.map(eventJson), next });
  });

  app.use((req, res) => {
    res.status(404).json({ error: `no route ${req.method} ${req.path}` });
  });

  app.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof BadRequest) return void res.status(400).json({ error: error.message });
    if (error instanceof UnknownTable) return void res.status(404).json({ error: error.message });
    if (error instanceof ServiceError) {
      return void res.status(503).json({ error: `Temporal unavailable: ${error.message}` });
    }
    if (error instanceof CircuitOpen || isPostgresOutage(error)) {
      return void res.status(503).json({ error: `unavailable: ${error instanceof Error ? error.message : String(error)}` });
    }
    logger.error({ err: error, path: req.path }, 'api: request failed');
    res.status(500).json({ error: error instanceof Error ? error.message : String(error) });
  });

  return app;
}

function pending(workflowId: string, runId: string | undefined, what: string) {
  const poll = `/verifications/${encodeURIComponent(workflowId)}${runId ? `?run_id=${encodeURIComponent(runId)}` : ''}`;
  return { status: 'running', workflow_id: workflowId, run_id: runId ?? null, poll, message: `the ${what} is still running; GET ${poll} for its result` };
}

/**
 * Serves the API on HEALTH_PORT and, for the original manual's consistency checker commands, on
 * CONSISTENCY_CHECKER_PORT too (when they differ).
 */
export async function startApi(deps: ApiDependencies): Promise<{ close(): Promise<void> }> {
  const app = createApiApp(deps);
  const { api, consistencyChecker } = deps.config;
  const addresses = [
    { host: api.healthHost, port: api.healthPort },
    { host: consistencyChecker.host, port: consistencyChecker.port },
  ].filter((address, index, all) => all.findIndex((other) => other.port === address.port) === index);
  const servers = await Promise.all(
    addresses.map(
      ({ host, port }) =>
        new Promise<Server>((resolve, reject) => {
          const listening = (error?: Error) => (error ? reject(error) : resolve(server));
          const server = host === undefined ? app.listen(port, listening) : app.listen(port, host, listening);
        }),
    ),
  );
  const ports = addresses.map(({ port }) => port);
  const described = addresses.map(({ host, port }) => (host === undefined ? `port ${port}` : `${host}:${port}`));
  deps.logger.info({ ports }, `api: listening on ${described.join(' and ')}`);
  return {
    async close() {
      await Promise.all(
        servers.map((server) => new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        })),
      );
    },
  };
}
