import type { MirrorView } from './definitions.js';
import type { MirrorCarriedState, MirrorDescription, TableEvent, TrackedTable } from './model.js';

/** How many event ids a mirror workflow remembers for deduplication. */
export const SEEN_EVENTS_KEPT = 2000;

/**
 * What one mirror workflow knows between its edits: the tables its mirror holds, the events waiting to be applied,
 * the event ids already received (a duplicated signal is ignored) and its count of recorded operations. Plain
 * bookkeeping, with no Temporal call in it, so that it is tested on its own (test/unit/mirror-state.test.ts); the
 * workflow changes it only through these methods. Carried across continue-as-new whole.
 */
export class MirrorState {
  private readonly tracked: Map<string, TrackedTable>;
  private readonly seen: Set<string>;
  private queue: TableEvent[];
  private operations: number;
  /** Whether PeerDB holds a mirror of this name (as far as this workflow knows). */
  exists: boolean;

  constructor(readonly mirror: string, carried?: MirrorCarriedState) {
    this.tracked = new Map(carried?.tables.map((table) => [table.source, table]));
    this.seen = new Set(carried?.seenEventIds);
    this.queue = [...(carried?.pending ?? [])];
    this.operations = carried?.operationSeq ?? 0;
    this.exists = this.tracked.size > 0;
  }

  /** Queues the events not seen before. */
  receive(events: readonly TableEvent[]): void {
    for (const event of events) {
      if (this.seen.has(event.eventId)) continue;
      this.seen.add(event.eventId);
      if (this.seen.size > SEEN_EVENTS_KEPT) this.seen.delete(this.seen.values().next().value!);
      this.queue.push(event);
    }
  }

  get hasPending(): boolean {
    return this.queue.length > 0;
  }

  /** The queued events, oldest first; the queue is empty afterwards. */
  takePending(): TableEvent[] {
    const taken = this.queue;
    this.queue = [];
    return taken;
  }

  /** A key for the next recorded operation, unique within the workflow's run. */
  nextOperationKey(runId: string): string {
    this.operations++;
    return `${runId}:${this.operations}`;
  }

  get tables(): TrackedTable[] {
    return [...this.tracked.values()];
  }

  get size(): number {
    return this.tracked.size;
  }

  /** The tables as a map by source, for planning (workflows/plan.ts). */
  byTable(): ReadonlyMap<string, TrackedTable> {
    return this.tracked;
  }

  track(tables: readonly TrackedTable[]): void {
    for (const table of tables) this.tracked.set(table.source, table);
  }

  untrack(tables: readonly TrackedTable[]): void {
    for (const table of tables) this.tracked.delete(table.source);
  }

  /** The mirror is gone (dropped, or about to be created anew): it holds nothing. */
  forget(): void {
    this.tracked.clear();
    this.exists = false;
  }

  /** What PeerDB holds when a first run starts (its history was lost or terminated); their relations are unknown. */
  adopt(description: MirrorDescription): void {
    this.exists = description.exists;
    this.track(description.tables.map((table) => ({ ...table, relationOid: null })));
  }

  view(): MirrorView {
    return { mirror: this.mirror, exists: this.exists, tables: this.tables, pendingEvents: this.queue.length };
  }

  carried(): MirrorCarriedState {
    return { tables: this.tables, seenEventIds: [...this.seen], pending: [...this.queue], operationSeq: this.operations };
  }
}
