import type { MirrorTable, TableEvent, TableFacts, TrackedTable } from './model.js';

export interface MirrorPlan {
  /** Tables to put into the mirror, with the relation they will be snapshotted from. */
  add: TrackedTable[];
  /** Tables to take out: gone, no longer mirrorable, or replaced by a new table of the same name. */
  remove: TrackedTable[];
  /** Tables the mirror already holds whose relation was unknown until now. */
  adopted: TrackedTable[];
  /** Tables an event named that are not to be mirrored, and why. */
  skipped: { schema: string; table: string; reason: string }[];
  /**
   * Tables the mirror holds that have lost their replica identity, under MISSING_REPLICA_IDENTITY=set-full: to be
   * given REPLICA IDENTITY FULL (in a publication without one, PostgreSQL rejects their UPDATEs).
   */
  repair: TrackedTable[];
}

/**
 * What one edit must do so that the mirror holds exactly the mirrorable tables among those the events named,
 * as the catalog has them now. `facts[i]` describes `events[i]`'s table. Pure, so workflows stay deterministic.
 */
export function planChanges(
  events: readonly TableEvent[],
  facts: readonly TableFacts[],
  tables: ReadonlyMap<string, TrackedTable>,
): MirrorPlan {
  const plan: MirrorPlan = { add: [], remove: [], adopted: [], skipped: [], repair: [] };
  events.forEach((event, index) => {
    const fact = facts[index];
    if (fact === undefined) throw new Error(`no catalog facts for ${event.source}`);
    const tracked = tables.get(event.source);
    const wanted: TrackedTable = { ...mirrorTableOf(event), relationOid: fact.relationOid };
    if (!fact.mirrorable) {
      if (tracked) plan.remove.push(tracked);
      plan.skipped.push({ schema: event.schema, table: event.table, reason: fact.reason ?? 'not mirrorable' });
    } else if (!tracked) {
      plan.add.push(wanted);
    } else if (tracked.relationOid !== null && tracked.relationOid !== fact.relationOid) {
      plan.remove.push(tracked);
      plan.add.push(wanted);
    } else {
      if (tracked.relationOid === null) plan.adopted.push({ ...tracked, relationOid: fact.relationOid });
      if (fact.needsFullIdentity) plan.repair.push(tracked);
    }
  });
  return plan;
}

function mirrorTableOf({ schema, table, source, destination }: TableEvent): MirrorTable {
  return { schema, table, source, destination };
}
