import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CircuitBreaker } from './circuit-breaker.js';

/** What the figures read from EchoDB's tables say; the same on every replica. */
export interface DurableFigures {
  outbox: { pending: number; oldestPendingAgeSeconds: number | null };
  /** Recorded mirror operations by operation and result (echodb.mirror_operations). */
  mirrorOperations: { operation: string; result: string; count: number }[];
  /** Finished verifications by status (echodb.verifications). */
  verifications: { status: string; count: number }[];
  mirroredTables: number;
  /** Mirrored tables whose latest verification found a mismatch. */
  tablesMismatched: number;
  /** Mirror operations waiting on PeerDB now (echodb.mirror_waits), with how long and whether they stalled. */
  mirrorWaits: { mirror: string; operation: string; seconds: number; stalled: boolean }[];
  /** Tables of watched schemas left out of the mirrors, by reason kind (echodb.unmirrored_tables). */
  unmirroredTables: number;
}

/**
 * EchoDB's Prometheus metrics. The counters and the histogram count what this process did (the listener's
 * dispatches); the gauges of durable state are set from EchoDB's tables at each scrape (`setDurable`), and
 * those of leadership and circuit breakers read this process's own at each scrape.
 */
export function createMetrics() {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: 'echodb_' });

  const breakers: CircuitBreaker[] = [];
  let leader: (() => boolean) | undefined;

  const metrics = {
    registry,
    eventsDispatched: new Counter({
      name: 'echodb_events_dispatched_total',
      help: 'Outbox events this listener handled, by outcome (dispatched, skipped by the filters, failed)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    dispatchLatency: new Histogram({
      name: 'echodb_ddl_dispatch_latency_seconds',
      help: 'From the DDL (its outbox row) to the signal Temporal accepted, for events this listener dispatched',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    leadershipChanges: new Counter({
      name: 'echodb_leadership_changes_total',
      help: 'Times this listener became leader or follower',
      registers,
    }),
    outboxBacklog: new Gauge({
      name: 'echodb_outbox_backlog_events',
      help: 'Outbox events not dispatched yet (echodb.ddl_events, status pending)',
      registers,
    }),
    outboxOldestAge: new Gauge({
      name: 'echodb_outbox_oldest_pending_age_seconds',
      help: 'Age of the oldest outbox event not dispatched yet; 0 when there is none',
      registers,
    }),
    mirrorOperations: new Gauge({
      name: 'echodb_mirror_operations',
      help: 'Mirror operations recorded in echodb.mirror_operations, by operation and result',
      labelNames: ['operation', 'result'] as const,
      registers,
    }),
    verifications: new Gauge({
      name: 'echodb_verifications',
      help: 'Verifications recorded in echodb.verifications, by status (match, mismatch, error)',
      labelNames: ['status'] as const,
      registers,
    }),
    mirroredTables: new Gauge({ name: 'echodb_mirrored_tables', help: 'Tables in EchoDB\'s mirrors', registers }),
    mirrorWaitSeconds: new Gauge({
      name: 'echodb_mirror_wait_seconds',
      help: 'How long each mirror operation waiting on PeerDB has waited (0 series: none waits)',
      labelNames: ['mirror', 'operation'],
      registers,
    }),
    mirrorWaitStalled: new Gauge({
      name: 'echodb_mirror_wait_stalled',
      help: 'Mirrors whose wait on PeerDB went MIRROR_STALL_TIMEOUT without progress (1), with its diagnosis in /mirrors',
      labelNames: ['mirror'],
      registers,
    }),
    unmirroredTables: new Gauge({
      name: 'echodb_unmirrored_tables',
      help: 'Tables of watched schemas EchoDB left out of its mirrors (no usable replica identity, unlogged...), see /mirrors',
      registers,
    }),
    tablesMismatched: new Gauge({
      name: 'echodb_tables_mismatched',
      help: 'Mirrored tables whose latest verification found a mismatch',
      registers,
    }),
    isLeader: new Gauge({
      name: 'echodb_is_leader',
      help: '1 while this replica\'s listener is the leader, else 0',
      registers,
      collect() {
        this.set(leader?.() ? 1 : 0);
      },
    }),
    breakerState: new Gauge({
      name: 'echodb_circuit_breaker_state',
      help: 'This process\'s circuit breakers: 1 for the state each one is in',
      labelNames: ['breaker', 'state'] as const,
      registers,
      collect() {
        for (const breaker of breakers) {
          const { state } = breaker.snapshot();
          for (const candidate of ['closed', 'open', 'half_open']) {
            this.set({ breaker: breaker.dependency, state: candidate }, candidate === state ? 1 : 0);
          }
        }
      },
    }),
    breakerFailures: new Gauge({
      name: 'echodb_circuit_breaker_failures',
      help: 'Consecutive failures each circuit breaker of this process counted',
      labelNames: ['breaker'] as const,
      registers,
      collect() {
        for (const breaker of breakers) this.set({ breaker: breaker.dependency }, breaker.snapshot().failures);
      },
    }),

    /** Reports these breakers' states at each scrape. */
    watchBreakers(...watched: CircuitBreaker[]): void {
      breakers.push(...watched);
    },
    /** Reports whether this replica leads at each scrape. */
    watchLeadership(isLeader: () => boolean): void {
      leader = isLeader;
    },
    setDurable(figures: DurableFigures): void {
      metrics.outboxBacklog.set(figures.outbox.pending);
      metrics.outboxOldestAge.set(figures.outbox.oldestPendingAgeSeconds ?? 0);
      metrics.mirrorOperations.reset();
      for (const { operation, result, count } of figures.mirrorOperations) {
        metrics.mirrorOperations.set({ operation, result }, count);
      }
      metrics.verifications.reset();
      for (const status of ['match', 'mismatch', 'error']) metrics.verifications.set({ status }, 0);
      for (const { status, count } of figures.verifications) metrics.verifications.set({ status }, count);
      metrics.mirroredTables.set(figures.mirroredTables);
      metrics.tablesMismatched.set(figures.tablesMismatched);
      metrics.mirrorWaitSeconds.reset();
      metrics.mirrorWaitStalled.reset();
      for (const { mirror, operation, seconds, stalled } of figures.mirrorWaits) {
        metrics.mirrorWaitSeconds.set({ mirror, operation }, seconds);
        metrics.mirrorWaitStalled.set({ mirror }, stalled ? 1 : 0);
      }
      metrics.unmirroredTables.set(figures.unmirroredTables);
    },
  };
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
