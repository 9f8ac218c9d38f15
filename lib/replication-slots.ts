/**
 * The health of the replication slots and publications PeerDB made for EchoDB's mirrors (`peerflow_slot_<mirror>`,
 * `peerflow_pub_<mirror>`: PeerDB's GetDefaultSlotName and GetDefaultPublicationName, which EchoDB never
 * overrides), read from the source database's catalog: active or not, the WAL each slot makes PostgreSQL keep,
 * its wal_status and safe_wal_size, since when it has been inactive; and which of them are orphans, left behind
 * by a mirror EchoDB dropped.
 *
 * Reading needs no privilege beyond connecting: pg_replication_slots, pg_publication and pg_publication_tables
 * are readable by every role, and so are pg_current_wal_lsn() and pg_wal_lsn_diff(). Dropping an orphan needs
 * the REPLICATION attribute (the slot) and ownership of the publication (the role PeerDB's source peer uses owns
 * it), or a superuser.
 */
import { hostname } from 'node:os';
import pg from 'pg';
import type { SourceQuery } from './mirrored-tables.js';

export const SLOT_PREFIX = 'peerflow_slot_';
export const PUBLICATION_PREFIX = 'peerflow_pub_';

/**
 * Whose a slot or publication is: a mirror of EchoDB's that exists; an orphan of a mirror EchoDB dropped; or
 * `foreign`, named like PeerDB's but of no mirror EchoDB ever made (another PeerDB's, or hand-made), which EchoDB
 * reports and never touches.
 */
export type Owner = 'mirror' | 'orphan' | 'foreign';

export interface SlotHealth {
  slot: string;
  /** The mirror its name gives. */
  mirror: string;
  owner: Owner;
  /** Why it has that owner, in words. */
  reason: string;
  active: boolean;
  activePid: number | null;
  /** WAL PostgreSQL keeps for the slot: the current LSN less restart_lsn. Null when the slot lost its WAL. */
  retainedBytes: number | null;
  /** WAL not yet confirmed by the slot's consumer: the current LSN less confirmed_flush_lsn. */
  confirmedLagBytes: number | null;
  /** reserved, extended, unreserved or lost (PostgreSQL 13 and later). */
  walStatus: string | null;
  /** WAL that can still be written before the slot is invalidated; null when max_slot_wal_keep_size is -1. */
  safeWalBytes: number | null;
  /** PostgreSQL's own (17 and later), else when EchoDB's leader first saw it inactive; null while active. */
  inactiveSince: Date | null;
  inactiveSeconds: number | null;
}

export interface PublicationHealth {
  publication: string;
  mirror: string;
  owner: Owner;
  reason: string;
  /** Tables in the publication. */
  tables: number;
}

export interface ReplicationHealth {
  slots: SlotHealth[];
  publications: PublicationHealth[];
}

/** What EchoDB's tables say of a mirror name. */
export interface MirrorRecord {
  mirror: string;
  /** It holds tables (echodb.destination_claims). */
  holdsTables: boolean;
  /** An operation on it waits on PeerDB now (echodb.mirror_waits). */
  waiting: boolean;
  /** Its latest recorded operation, if any (retention keeps each mirror's latest). */
  latest: { operation: string; result: string; at: Date } | null;
}

/** Whose the slot or publication of `mirror` is, by EchoDB's record of it (undefined: EchoDB never had it). */
export function ownership(mirror: string, record: MirrorRecord | undefined): { owner: Owner; reason: string } {
  if (record === undefined) return { owner: 'foreign', reason: `EchoDB never had a mirror ${mirror}` };
  if (record.holdsTables) return { owner: 'mirror', reason: `mirror ${mirror} holds tables` };
  if (record.waiting) return { owner: 'mirror', reason: `an operation on mirror ${mirror} is under way` };
  const { latest } = record;
  if (latest?.operation === 'drop' && latest.result === 'succeeded') {
    return { owner: 'orphan', reason: `EchoDB dropped mirror ${mirror} at ${latest.at.toISOString()}` };
  }
  // A create that failed, say: PeerDB may still hold the mirror, so it counts as existing.
  return { owner: 'mirror', reason: latest ? `mirror ${mirror}: its latest operation is ${latest.operation} ${latest.result}` : `mirror ${mirror}` };
}

/** `%` and `_` are LIKE's wildcards; the prefixes hold `_`. */
const likePrefix = (prefix: string) => `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/**
 * The current WAL position, on a primary or (PostgreSQL 16 and later keep logical slots there too) a standby, as
 * PeerDB reads it (flow/connectors/postgres/client.go getSlotInfo).
 */
const CURRENT_LSN = `CASE WHEN pg_is_in_recovery()
  THEN GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) ELSE pg_current_wal_lsn() END`;

interface SlotRow {
  slot: string;
  mirror: string;
  active: boolean;
  active_pid: number | null;
  retained_bytes: number | null;
  confirmed_lag_bytes: number | null;
  wal_status: string | null;
  safe_wal_bytes: number | null;
  inactive_since: Date | null;
  inactive_seconds: number | null;
}

/**
 * The slots and publications named like PeerDB's in the source database, each with its owner. One statement
 * each; the columns PostgreSQL added over the releases (wal_status and safe_wal_size in 13, inactive_since in
 * 17) are read through to_jsonb, so the same text runs on every release.
 */
export async function readReplicationHealth(query: SourceQuery): Promise<ReplicationHealth> {
  const [slots, publications] = await Promise.all([
    query<SlotRow>(
      `WITH now_lsn AS (SELECT ${CURRENT_LSN} AS lsn),
            slots AS (SELECT s.*, to_jsonb(s) AS j FROM pg_replication_slots s
                       WHERE s.database = current_database() AND s.slot_name LIKE $1),
            since AS (SELECT s.slot_name,
                             CASE WHEN s.active THEN NULL
                                  ELSE coalesce((s.j ->> 'inactive_since')::timestamptz, o.inactive_since) END AS at
                        FROM slots s LEFT JOIN echodb.slot_observations o ON o.slot_name = s.slot_name)
       SELECT s.slot_name AS slot, substr(s.slot_name, $2) AS mirror, s.active, s.active_pid,
              pg_wal_lsn_diff(n.lsn, s.restart_lsn)::float8 AS retained_bytes,
              pg_wal_lsn_diff(n.lsn, s.confirmed_flush_lsn)::float8 AS confirmed_lag_bytes,
              s.j ->> 'wal_status' AS wal_status, (s.j ->> 'safe_wal_size')::float8 AS safe_wal_bytes,
              since.at AS inactive_since,
              greatest(0, extract(epoch FROM clock_timestamp() - since.at))::float8 AS inactive_seconds
         FROM slots s CROSS JOIN now_lsn n JOIN since ON since.slot_name = s.slot_name
        ORDER BY s.slot_name`,
      [likePrefix(SLOT_PREFIX), SLOT_PREFIX.length + 1],
    ),
    query<{ publication: string; mirror: string; tables: number }>(
      `SELECT p.pubname AS publication, substr(p.pubname, $2) AS mirror,
              (SELECT count(*) FROM pg_publication_tables t WHERE t.pubname = p.pubname)::int AS tables
         FROM pg_publication p WHERE p.pubname LIKE $1 ORDER BY p.pubname`,
      [likePrefix(PUBLICATION_PREFIX), PUBLICATION_PREFIX.length + 1],
    ),
  ]);
  const names = [...new Set([...slots.rows, ...publications.rows].map((row) => row.mirror))];
  const records = names.length === 0 ? new Map<string, MirrorRecord>() : await mirrorRecords(query, names);
  return {
    slots: slots.rows.map((row) => ({
      slot: row.slot,
      mirror: row.mirror,
      ...ownership(row.mirror, records.get(row.mirror)),
      active: row.active,
      activePid: row.active_pid,
      retainedBytes: row.retained_bytes,
      confirmedLagBytes: row.confirmed_lag_bytes,
      walStatus: row.wal_status,
      safeWalBytes: row.safe_wal_bytes,
      inactiveSince: row.inactive_since,
      inactiveSeconds: row.inactive_seconds,
    })),
    publications: publications.rows.map((row) => ({ ...row, ...ownership(row.mirror, records.get(row.mirror)) })),
  };
}

/** What EchoDB's tables say of each of these mirror names; a name they never held is missing from the map. */
async function mirrorRecords(query: SourceQuery, names: string[]): Promise<Map<string, MirrorRecord>> {
  const { rows } = await query<{ mirror: string; holds_tables: boolean; waiting: boolean; operation: string | null; result: string | null; at: Date | null }>(
    `SELECT m.mirror,
            EXISTS (SELECT 1 FROM echodb.destination_claims c WHERE c.mirror = m.mirror) AS holds_tables,
            EXISTS (SELECT 1 FROM echodb.mirror_waits w WHERE w.mirror = m.mirror) AS waiting,
            l.operation, l.result, l.created_at AS at
       FROM unnest($1::text[]) AS m(mirror)
       LEFT JOIN LATERAL (SELECT operation, result, created_at FROM echodb.mirror_operations o
                           WHERE o.mirror = m.mirror ORDER BY o.id DESC LIMIT 1) l ON true`,
    [names],
  );
  return new Map(
    rows
      .filter((row) => row.holds_tables || row.waiting || row.operation !== null)
      .map((row) => [row.mirror, {
        mirror: row.mirror,
        holdsTables: row.holds_tables,
        waiting: row.waiting,
        latest: row.operation === null ? null : { operation: row.operation, result: row.result!, at: row.at! },
      }]),
  );
}

/**
 * Records, for each of PeerDB-named slot in the source database, since when it has been inactive (kept from the
 * first time it was seen inactive; NULL once it is active), and forgets the slots that are gone. The leader runs
 * it every SLOT_CHECK_INTERVAL: on PostgreSQL before 17 it is the only record of when a slot went inactive.
 */
export async function recordSlotObservations(query: SourceQuery): Promise<void> {
  await query(
    `WITH current AS (SELECT slot_name, active FROM pg_replication_slots
                       WHERE database = current_database() AND slot_name LIKE $1),
          gone AS (DELETE FROM echodb.slot_observations o
                    WHERE NOT EXISTS (SELECT 1 FROM current c WHERE c.slot_name = o.slot_name))
     INSERT INTO echodb.slot_observations AS o (slot_name, inactive_since, observed_at)
     SELECT slot_name, CASE WHEN active THEN NULL ELSE clock_timestamp() END, clock_timestamp() FROM current
     ON CONFLICT (slot_name) DO UPDATE
        SET inactive_since = CASE WHEN excluded.inactive_since IS NULL THEN NULL
                                  ELSE coalesce(o.inactive_since, excluded.inactive_since) END,
            observed_at = excluded.observed_at`,
    [likePrefix(SLOT_PREFIX)],
  );
}

/** Bytes as an operator reads them: 0 B, 512 B, 12.0 MiB, 5.1 GiB. */
export function formatBytes(bytes: number | null): string {
  if (bytes === null) return 'unknown';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export interface SlotThresholds {
  /** 0: no warning. */
  walWarnBytes: number;
  /** 0: no warning. */
  inactiveWarnMs: number;
}

export interface SlotWarning {
  level: 'warn' | 'info';
  fields: Record<string, unknown>;
  message: string;
}

/**
 * The log lines one look at the slots calls for, given what was already reported (`reported`, keys of the
 * conditions warned about and not yet over; updated in place): a warning when a condition starts, one line when
 * it ends, nothing while it lasts. Conditions: a slot of EchoDB's past SLOT_WAL_WARN_MB or inactive past
 * SLOT_INACTIVE_WARN_SECONDS, and each orphan.
 */
export function slotWarnings(health: ReplicationHealth, thresholds: SlotThresholds, reported: Set<string>): SlotWarning[] {
  const now = new Map<string, SlotWarning>();
  for (const slot of health.slots) {
    if (slot.owner === 'foreign') continue;
    const fields = { slot: slot.slot, mirror: slot.mirror, retained_wal_bytes: slot.retainedBytes, wal_status: slot.walStatus };
    const kept = `it keeps ${formatBytes(slot.retainedBytes)} of WAL (wal_status ${slot.walStatus ?? 'unknown'}, ` +
      `${slot.safeWalBytes === null ? 'no max_slot_wal_keep_size' : `${formatBytes(slot.safeWalBytes)} more before PostgreSQL invalidates it`})`;
    if (slot.owner === 'orphan') {
      now.set(`orphan:slot:${slot.slot}`, {
        level: 'warn',
        fields: { ...fields, reason: slot.reason },
        message: `slots: ${slot.slot} is an orphan (${slot.reason}); ${kept}; drop it with \`echodb slots --drop-orphans\``,
      });
    }
    if (thresholds.walWarnBytes > 0 && slot.retainedBytes !== null && slot.retainedBytes >= thresholds.walWarnBytes) {
      now.set(`wal:${slot.slot}`, {
        level: 'warn',
        fields,
        message: `slots: ${slot.slot} of mirror ${slot.mirror} passed SLOT_WAL_WARN_MB (${formatBytes(thresholds.walWarnBytes)}): ${kept}; ` +
          (slot.active ? 'PeerDB reads it but has not confirmed that WAL: see its mirror in the PeerDB UI' : 'nothing reads it: is the mirror paused, or PeerDB down?'),
      });
    }
    if (thresholds.inactiveWarnMs > 0 && slot.inactiveSeconds !== null && slot.inactiveSeconds * 1000 >= thresholds.inactiveWarnMs) {
      now.set(`inactive:${slot.slot}`, {
        level: 'warn',
        fields: { ...fields, inactive_since: slot.inactiveSince?.toISOString() },
        message: `slots: ${slot.slot} of mirror ${slot.mirror} has been inactive since ${slot.inactiveSince?.toISOString()} ` +
          `(past SLOT_INACTIVE_WARN_SECONDS, ${thresholds.inactiveWarnMs / 1000} s): nothing streams from it, so ${kept}; ` +
          'a paused mirror, or PeerDB\'s CDC down: resume it in PeerDB, or drop the mirror',
      });
    }
  }
  for (const publication of health.publications) {
    if (publication.owner !== 'orphan') continue;
    now.set(`orphan:publication:${publication.publication}`, {
      level: 'warn',
      fields: { publication: publication.publication, mirror: publication.mirror, reason: publication.reason },
      message: `slots: publication ${publication.publication} is an orphan (${publication.reason}); drop it with \`echodb slots --drop-orphans\``,
    });
  }
  const lines: SlotWarning[] = [];
  for (const [key, warning] of now) if (!reported.has(key)) lines.push(warning);
  for (const key of reported) {
    if (now.has(key)) continue;
    const [kind, ...rest] = key.split(':');
    const name = rest.join(':').replace(/^(slot|publication):/, '');
    const ended = { wal: 'retains less WAL than SLOT_WAL_WARN_MB again', inactive: 'is active again, or gone', orphan: 'is no longer an orphan (dropped, or its mirror is back)' }[kind!];
    lines.push({ level: 'info', fields: { name }, message: `slots: ${name} ${ended}` });
  }
  reported.clear();
  for (const key of now.keys()) reported.add(key);
  return lines;
}

export interface DropOutcome {
  kind: 'slot' | 'publication';
  name: string;
  mirror: string;
  dropped: boolean;
  /** Why it was dropped, or why not. */
  reason: string;
  retainedBytes: number | null;
}

/** The orphans of a reading: what `echodb slots --drop-orphans` would drop. */
export function orphansOf(health: ReplicationHealth): { slots: SlotHealth[]; publications: PublicationHealth[] } {
  return {
    slots: health.slots.filter((slot) => slot.owner === 'orphan'),
    publications: health.publications.filter((publication) => publication.owner === 'orphan'),
  };
}

const sqlState = (error: unknown): string | undefined => (error as { code?: string }).code;

/**
 * Drops the orphans of a fresh reading: slots first, then publications, as PeerDB's own clean-up does
 * (PullFlowCleanup). Never a slot or publication of a mirror that exists (by EchoDB's tables, read again now, or
 * in `peerdbMirrors`, PeerDB's list) nor an active slot (PostgreSQL refuses that itself, and a slot is dropped only
 * `WHERE NOT active`). Each drop is recorded in echodb.dropped_orphans.
 */
export async function dropOrphans(query: SourceQuery, peerdbMirrors: ReadonlySet<string>): Promise<DropOutcome[]> {
  const health = await readReplicationHealth(query);
  const { slots, publications } = orphansOf(health);
  const { rows } = await query<{ who: string }>('SELECT current_user AS who', []);
  const droppedBy = `${rows[0]!.who} (echodb slots on ${hostname()})`;
  const outcomes: DropOutcome[] = [];
  const record = (outcome: DropOutcome) =>
    query(
      `INSERT INTO echodb.dropped_orphans (kind, name, mirror, reason, retained_wal_bytes, dropped_by)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [outcome.kind, outcome.name, outcome.mirror, outcome.reason, outcome.retainedBytes === null ? null : Math.round(outcome.retainedBytes), droppedBy],
    );

  for (const slot of slots) {
    const base = { kind: 'slot' as const, name: slot.slot, mirror: slot.mirror, retainedBytes: slot.retainedBytes };
    if (peerdbMirrors.has(slot.mirror)) {
      outcomes.push({ ...base, dropped: false, reason: `PeerDB still has mirror ${slot.mirror}` });
      continue;
    }
    if (slot.active) {
      outcomes.push({ ...base, dropped: false, reason: `active (walsender pid ${slot.activePid})` });
      continue;
    }
    try {
      const dropped = await query(
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
          WHERE slot_name = $1 AND database = current_database() AND NOT active`,
        [slot.slot],
      );
      const outcome = dropped.rowCount === 1
        ? { ...base, dropped: true, reason: slot.reason }
        : { ...base, dropped: false, reason: 'it became active, or was dropped meanwhile' };
      if (outcome.dropped) await record(outcome);
      outcomes.push(outcome);
    } catch (error) {
      const reason = sqlState(error) === '55006' ? `active: ${(error as Error).message}`
        : sqlState(error) === '42704' ? 'dropped meanwhile'
        : sqlState(error) === '42501' ? `not allowed: ${(error as Error).message} (dropping a slot needs the REPLICATION attribute)`
        : `failed: ${(error as Error).message}`;
      outcomes.push({ ...base, dropped: false, reason });
    }
  }
  for (const publication of publications) {
    const base = { kind: 'publication' as const, name: publication.publication, mirror: publication.mirror, retainedBytes: null };
    if (peerdbMirrors.has(publication.mirror)) {
      outcomes.push({ ...base, dropped: false, reason: `PeerDB still has mirror ${publication.mirror}` });
      continue;
    }
    try {
      await query(`DROP PUBLICATION ${pg.escapeIdentifier(publication.publication)}`, []);
      const outcome = { ...base, dropped: true, reason: publication.reason };
      await record(outcome);
      outcomes.push(outcome);
    } catch (error) {
      const reason = sqlState(error) === '42704' ? 'dropped meanwhile'
        : sqlState(error) === '42501' ? `not allowed: ${(error as Error).message} (only its owner, the role of PeerDB's source peer, or a superuser may drop it)`
        : `failed: ${(error as Error).message}`;
      outcomes.push({ ...base, dropped: false, reason });
    }
  }
  return outcomes;
}
