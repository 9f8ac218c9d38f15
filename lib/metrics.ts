import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { ReplicationHealth } from './replication-slots.js';

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
  /** Mirrored tables whose latest verification could not count a side. */
  tablesVerificationErrors: number;
  /** Each mirror's latest recorded operation: whether it failed. */
  mirrorsLastOperation: { mirror: string; failed: boolean }[];
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
    tablesVerificationErrors: new Gauge({
      name: 'echodb_tables_verification_errors',
      help: 'Mirrored tables whose latest verification is an error (a side could not be counted)',
      registers,
    }),
    mirrorLastOperationFailed: new Gauge({
      name: 'echodb_mirror_last_operation_failed',
      help: 'Each mirror: 1 when its latest recorded operation (create, add_tables, remove_tables, drop, cancel_addition) failed, else 0',
      labelNames: ['mirror'] as const,
      registers,
    }),
    slotActive: new Gauge({
      name: 'echodb_replication_slot_active',
      help: 'Each replication slot of EchoDB\'s mirrors (and orphans): 1 while a walsender streams from it, else 0',
      labelNames: ['mirror', 'slot'] as const,
      registers,
    }),
    slotRetainedBytes: new Gauge({
      name: 'echodb_replication_slot_retained_wal_bytes',
      help: 'WAL PostgreSQL keeps for the slot: the current LSN less its restart_lsn',
      labelNames: ['mirror', 'slot'] as const,
      registers,
    }),
    slotConfirmedLagBytes: new Gauge({
      name: 'echodb_replication_slot_confirmed_lag_bytes',
      help: 'WAL its consumer (PeerDB) has not confirmed: the current LSN less the slot\'s confirmed_flush_lsn',
      labelNames: ['mirror', 'slot'] as const,
      registers,
    }),
    slotSafeWalBytes: new Gauge({
      name: 'echodb_replication_slot_safe_wal_bytes',
      help: 'WAL that can still be written before PostgreSQL invalidates the slot (safe_wal_size; no series when max_slot_wal_keep_size is unlimited)',
      labelNames: ['mirror', 'slot'] as const,
      registers,
    }),
    slotWalStatus: new Gauge({
      name: 'echodb_replication_slot_wal_status',
      help: 'The slot\'s wal_status: 1 for the current one of reserved, extended, unreserved, lost',
      labelNames: ['mirror', 'slot', 'wal_status'] as const,
      registers,
    }),
    slotInactiveSeconds: new Gauge({
      name: 'echodb_replication_slot_inactive_seconds',
      help: 'How long the slot has been inactive (0 while active; PostgreSQL 17\'s inactive_since, else since the leader first saw it inactive)',
      labelNames: ['mirror', 'slot'] as const,
      registers,
    }),
    publicationTables: new Gauge({
      name: 'echodb_replication_publication_tables',
      help: 'Tables in each publication of EchoDB\'s mirrors (and orphans)',
      labelNames: ['mirror', 'publication'] as const,
      registers,
    }),
    replicationOrphans: new Gauge({
      name: 'echodb_replication_orphans',
      help: 'Slots and publications of mirrors EchoDB dropped, by kind (slot, publication): `echodb slots --drop-orphans` drops them',
      labelNames: ['kind'] as const,
      registers,
    }),
    slotsReadable: new Gauge({
      name: 'echodb_replication_slots_readable',
      help: '1 when this scrape read pg_replication_slots and pg_publication, 0 when it could not (the slot series are then absent)',
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
      metrics.tablesVerificationErrors.set(figures.tablesVerificationErrors);
      metrics.mirrorLastOperationFailed.reset();
      for (const { mirror, failed } of figures.mirrorsLastOperation) metrics.mirrorLastOperationFailed.set({ mirror }, failed ? 1 : 0);
      metrics.mirrorWaitSeconds.reset();
      metrics.mirrorWaitStalled.reset();
      for (const { mirror, operation, seconds, stalled } of figures.mirrorWaits) {
        metrics.mirrorWaitSeconds.set({ mirror, operation }, seconds);
        metrics.mirrorWaitStalled.set({ mirror }, stalled ? 1 : 0);
      }
      metrics.unmirroredTables.set(figures.unmirroredTables);
    },
    /**
     * Sets the slot and publication series from a reading of them, every series of EchoDB's own and of its
     * orphans (not the foreign ones); null when they could not be read.
     */
    setReplication(health: ReplicationHealth | null): void {
      const perSlot = [metrics.slotActive, metrics.slotRetainedBytes, metrics.slotConfirmedLagBytes, metrics.slotSafeWalBytes, metrics.slotWalStatus, metrics.slotInactiveSeconds];
      for (const gauge of [...perSlot, metrics.publicationTables, metrics.replicationOrphans]) gauge.reset();
      metrics.slotsReadable.set(health === null ? 0 : 1);
      if (health === null) return;
      for (const slot of health.slots) {
        if (slot.owner === 'foreign') continue;
        const labels = { mirror: slot.mirror, slot: slot.slot };
        metrics.slotActive.set(labels, slot.active ? 1 : 0);
        if (slot.retainedBytes !== null) metrics.slotRetainedBytes.set(labels, slot.retainedBytes);
        if (slot.confirmedLagBytes !== null) metrics.slotConfirmedLagBytes.set(labels, slot.confirmedLagBytes);
        if (slot.safeWalBytes !== null) metrics.slotSafeWalBytes.set(labels, slot.safeWalBytes);
        if (slot.walStatus !== null) {
          for (const status of new Set(['reserved', 'extended', 'unreserved', 'lost', slot.walStatus])) {
            metrics.slotWalStatus.set({ ...labels, wal_status: status }, status === slot.walStatus ? 1 : 0);
          }
        }
        // Inactive since a time no one recorded yet (PostgreSQL before 17, no leader look since): no series.
        if (slot.active || slot.inactiveSeconds !== null) metrics.slotInactiveSeconds.set(labels, slot.active ? 0 : slot.inactiveSeconds!);
      }
      for (const publication of health.publications) {
        if (publication.owner !== 'foreign') metrics.publicationTables.set({ mirror: publication.mirror, publication: publication.publication }, publication.tables);
      }
      metrics.replicationOrphans.set({ kind: 'slot' }, health.slots.filter((slot) => slot.owner === 'orphan').length);
      metrics.replicationOrphans.set({ kind: 'publication' }, health.publications.filter((p) => p.owner === 'orphan').length);
    },
  };
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
