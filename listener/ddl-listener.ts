import type { Client } from '@temporalio/client';
import type pg from 'pg';
import pgListen, { type Subscriber } from 'pg-listen';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import { destinationNameLimit, namingRules } from '../lib/naming.js';
import { postgresClientConfig } from '../lib/postgres.js';
import { tableFilter, type TableFilter } from '../lib/table-filter.js';
import { dispatchRows, type DispatchContext, type RowOutcome } from './dispatch.js';
import type { Leadership } from './leader-election.js';
import { pendingEvents, recordOutcomes } from './outbox.js';
import type { DdlEventRow } from '../sql/ddl-events.js';
import { startReconcile } from './reconcile.js';

/** The channels sql/002_capture_triggers.sql notifies on: a wake-up call, the event itself is in the outbox. */
export const DDL_CHANNELS = ['peerdb_create_mirror', 'peerdb_drop_mirror'] as const;
/** A leader that lets go of its lease says so here, so that a follower takes over at once. */
export const LEADER_CHANNEL = 'echodb_leader_released';

export interface DdlListenerOptions {
  config: Config;
  /** The source database, for the outbox. */
  postgres: pg.Pool;
  temporal: Client;
  leadership: Leadership;
  logger: Logger;
  /** Counts what this listener dispatched, and how long after its DDL. */
  metrics?: Pick<Metrics, 'eventsDispatched' | 'dispatchLatency'>;
}

/**
 * Turns the outbox into workflows. Every replica runs one; only the leader dispatches. NOTIFY wakes it and a
 * periodic poll is the safety net; each wake-up drains the pending rows in id order, batch by batch, checking
 * the lease before each batch. A row is marked only after Temporal accepted it, so a crash at any point leaves
 * it pending for the next leader, and a duplicate delivery is deduplicated by the mirror workflow.
 */
export class DdlListener {
  private subscriber: Subscriber | undefined;
  private readonly dispatch: DispatchContext;
  private readonly filter: TableFilter;
  private pollTimer: NodeJS.Timeout | undefined;
  private draining: Promise<void> | undefined;
  private drainAgain = false;
  private stopping = false;
  private failing = false;
  private fail: (error: Error) => void = () => undefined;
  /** Rejects when PostgreSQL stays unreachable past MAX_RECONNECT_ATTEMPTS. */
  readonly failed = new Promise<never>((_, reject) => {
    this.fail = reject;
  });

  constructor(private readonly options: DdlListenerOptions) {
    const { config } = options;
    this.dispatch = {
      client: options.temporal,
      taskQueue: config.temporal.taskQueue,
      naming: namingRules(config),
      destinationTemplate: config.mirror.destinationTableTemplate,
      destinationMaxLength: destinationNameLimit(config.clickhouse.database),
    };
    this.filter = tableFilter(config.sync);
    this.failed.catch(() => undefined);
  }

  async start(): Promise<void> {
    const { logger, leadership, config } = this.options;
    const subscriber = await this.connect();
    for (const channel of [...DDL_CHANNELS, LEADER_CHANNEL]) await subscriber.listenTo(channel);
    leadership.onChange(({ isLeader }) => {
      if (!isLeader) return;
      this.wake();
      startReconcile(this.options.temporal, config.temporal.taskQueue).then(
        ({ workflowId, firstExecutionRunId }) =>
          logger.info({ workflow_id: workflowId, run_id: firstExecutionRunId }, `listener: reconcile ${workflowId} started`),
        (error: unknown) => logger.warn({ err: error }, `listener: could not start reconcile: ${String(error)}`),
      );
    });
    this.pollTimer = setInterval(() => this.wake(), config.outbox.pollIntervalMs);
    leadership.start();
    logger.info(`listener: ${config.workerId} listening on ${DDL_CHANNELS.join(', ')} (leader election by ${leadership.state().backend})`);
  }

  /**
   * Finishes the batch in hand, gives up the lease and tells the followers, then closes the connection.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.pollTimer);
    await this.draining;
    const { leadership, postgres, logger } = this.options;
    const wasLeader = leadership.state().isLeader;
    await leadership.stop();
    if (wasLeader) {
      await postgres.query('SELECT pg_notify($1, $2)', [LEADER_CHANNEL, this.options.config.workerId]).catch(
        (error: unknown) => logger.warn(`listener: could not announce the release: ${String(error)}`),
      );
    }
    await this.subscriber?.close().catch(() => undefined);
  }

  /** Drains now, or once more after the drain in progress. */
  private wake(): void {
    if (this.stopping) return;
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = (async () => {
      do {
        this.drainAgain = false;
        await this.drain();
      } while (this.drainAgain && !this.stopping);
    })().finally(() => {
      this.draining = undefined;
    });
  }

  private async drain(): Promise<void> {
    const { postgres, leadership, config } = this.options;
    try {
      while (!this.stopping && leadership.state().isLeader) {
        const rows = await pendingEvents(postgres, config.outbox.batchSize);
        if (rows.length === 0 || !(await leadership.confirm())) return;
        const outcomes = await dispatchRows(this.dispatch, rows, this.filter, () => !leadership.holds());
        const recordedAt = new Date();
        await recordOutcomes(postgres, outcomes, config.workerId, recordedAt);
        this.observe(rows, outcomes, recordedAt);
        const failures = outcomes.filter((outcome) => outcome.status === 'failed');
        if (failures.length > 0 || outcomes.length < rows.length) {
          // Temporal refused or the lease ran out: the rest waits for the next poll.
          this.report(failures.length > 0 ? `dispatch failed for ${failures.length} event(s): ${failures[0]!.error}` : undefined);
          return;
        }
        this.report(undefined);
        if (rows.length < config.outbox.batchSize) return;
      }
    } catch (error) {
      this.report(`outbox unreachable: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** One log line and the metrics for each row the leader handled. */
  private observe(rows: readonly DdlEventRow[], outcomes: readonly RowOutcome[], at: Date): void {
    const { logger, metrics } = this.options;
    const rowOf = new Map(rows.map((row) => [row.id, row]));
    for (const outcome of outcomes) {
      const row = rowOf.get(outcome.id)!;
      const fields = { event_id: Number(outcome.id), operation: row.operation, schema: row.schema_name, table: row.table_name };
      metrics?.eventsDispatched.inc({ outcome: outcome.status });
      if (outcome.status === 'dispatched') {
        metrics?.dispatchLatency.observe((at.getTime() - row.created_at.getTime()) / 1000);
        logger.info({ ...fields, workflow_id: outcome.workflowIds.join(',') }, 'listener: event dispatched');
      } else if (outcome.status === 'skipped') {
        logger.info({ ...fields, reason: outcome.reason }, 'listener: event skipped');
      } else {
        logger.debug({ ...fields, error: outcome.error }, 'listener: event not accepted; it stays pending');
      }
    }
  }

  /** Logs the start and the end of a run of failures, not every retry. */
  private report(problem: string | undefined): void {
    if (problem !== undefined && !this.failing) this.options.logger.warn(`listener: ${problem}; retrying`);
    if (problem === undefined && this.failing) this.options.logger.info('listener: dispatching again');
    this.failing = problem !== undefined;
  }

  /** RECONNECT_DELAY after the first failed attempt, doubling after each further one, at most a minute. */
  private reconnectDelay(failedBefore: number): number {
    return Math.min(this.options.config.reconnect.delayMs * 2 ** failedBefore, 60_000);
  }

  /**
   * The notification connection. pg-listen reconnects after a loss, waiting RECONNECT_DELAY and then twice as
   * long each time (up to a minute), MAX_RECONNECT_ATTEMPTS times, and LISTENs again; the first connection is
   * retried here the same way.
   */
  private async connect(): Promise<Subscriber> {
    const { config, leadership, logger } = this.options;
    const { maxAttempts } = config.reconnect;
    for (let attempt = 1; ; attempt++) {
      const subscriber = pgListen.default(postgresClientConfig(config.postgres, `echodb-listener:${config.workerId}`), {
        // pg-listen's reconnection loop does not look at close(): stopping ends it here (its error is ignored).
        retryInterval: (failed) => {
          if (this.stopping) throw new Error('listener stopped');
          return this.reconnectDelay(failed);
        },
        // pg-listen makes retryLimit - 1 attempts, and 0 means forever.
        retryLimit: maxAttempts === 0 ? 0 : maxAttempts + 1,
        retryTimeout: 0,
        paranoidChecking: Math.max(1000, config.outbox.pollIntervalMs),
        // Payloads are never read (the outbox holds the events), so none can break the listener either.
        parse: (payload) => payload,
      });
      subscriber.events.on('notification', ({ channel }) => {
        if (channel === LEADER_CHANNEL) leadership.campaign();
        else this.wake();
      });
      subscriber.events.on('reconnect', (n) => logger.warn(`listener: reconnecting to PostgreSQL (attempt ${n})`));
      // After a reconnection: catch up on what was committed meanwhile; or, stopped meanwhile, close the new one.
      subscriber.events.on('connected', () => {
        if (this.stopping) void subscriber.close().catch(() => undefined);
        else this.wake();
      });
      subscriber.events.on('error', (error) => {
        if (!this.stopping) this.fail(new Error(`listener: ${error.message}`));
      });
      try {
        await subscriber.connect();
        this.subscriber = subscriber;
        return subscriber;
      } catch (error) {
        await subscriber.close().catch(() => undefined);
        if (maxAttempts !== 0 && attempt > maxAttempts) throw error;
        const delayMs = this.reconnectDelay(attempt - 1);
        logger.warn(`listener: cannot reach PostgreSQL (${String(error)}); retrying in ${delayMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }
}
