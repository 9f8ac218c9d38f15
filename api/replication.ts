// Replication slots and publications (lib/replication-slots.ts) as /mirrors, `echodb status --json` and
// `echodb slots --json` show them.
import type { PublicationHealth, ReplicationHealth, SlotHealth } from '../lib/replication-slots.js';

export function slotJson(slot: SlotHealth) {
  return {
    slot: slot.slot,
    mirror: slot.mirror,
    owner: slot.owner,
    reason: slot.reason,
    active: slot.active,
    active_pid: slot.activePid,
    retained_wal_bytes: slot.retainedBytes,
    confirmed_lag_bytes: slot.confirmedLagBytes,
    wal_status: slot.walStatus,
    safe_wal_bytes: slot.safeWalBytes,
    inactive_since: slot.inactiveSince?.toISOString() ?? null,
    inactive_seconds: slot.inactiveSeconds === null ? null : Math.round(slot.inactiveSeconds),
  };
}

export function publicationJson(publication: PublicationHealth) {
  return {
    publication: publication.publication,
    mirror: publication.mirror,
    owner: publication.owner,
    reason: publication.reason,
    tables: publication.tables,
  };
}

/** A mirror's own slot and publication (null where PeerDB has not made it, or it is gone). */
export function mirrorReplicationJson(health: ReplicationHealth, mirror: string) {
  const slot = health.slots.find((s) => s.mirror === mirror && s.owner === 'mirror');
  const publication = health.publications.find((p) => p.mirror === mirror && p.owner === 'mirror');
  return { slot: slot ? slotJson(slot) : null, publication: publication ? publicationJson(publication) : null };
}

/**
 * What is not any mirror's: the orphans (of mirrors EchoDB dropped) and the foreign ones (named like PeerDB's,
 * of no mirror EchoDB ever had); or why the slots could not be read.
 */
export function replicationExtrasJson(health: ReplicationHealth | Error) {
  if (health instanceof Error) return { replication_error: `PostgreSQL: ${health.message}` };
  const of = (owner: 'orphan' | 'foreign') => ({
    slots: health.slots.filter((slot) => slot.owner === owner).map(slotJson),
    publications: health.publications.filter((publication) => publication.owner === owner).map(publicationJson),
  });
  return { orphans: of('orphan'), foreign: of('foreign') };
}
