import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../lib/metrics.js';
import {
  formatBytes,
  orphansOf,
  ownership,
  slotWarnings,
  type MirrorRecord,
  type ReplicationHealth,
  type SlotHealth,
} from '../../lib/replication-slots.js';

const at = new Date('2026-12-01T10:00:00Z');
const record = (mirror: string, fields: Partial<MirrorRecord> = {}): MirrorRecord => ({ mirror, holdsTables: false, waiting: false, latest: null, ...fields });

function slot(mirror: string, fields: Partial<SlotHealth> = {}): SlotHealth {
  return {
    slot: `peerflow_slot_${mirror}`,
    mirror,
    owner: 'mirror',
    reason: `mirror ${mirror} holds tables`,
    active: true,
    activePid: 4242,
    retainedBytes: 1024,
    confirmedLagBytes: 0,
    walStatus: 'reserved',
    safeWalBytes: null,
    inactiveSince: null,
    inactiveSeconds: null,
    ...fields,
  };
}

describe('ownership', () => {
  it('makes a slot an orphan only when EchoDB dropped its mirror and holds nothing of it', () => {
    const dropped = { operation: 'drop', result: 'succeeded', at };
    expect(ownership('m', record('m', { latest: dropped }))).toEqual({ owner: 'orphan', reason: 'EchoDB dropped mirror m at 2026-12-01T10:00:00.000Z' });
    // Re-created since, or an operation under way, or a drop that failed: the mirror exists.
    expect(ownership('m', record('m', { latest: dropped, holdsTables: true })).owner).toBe('mirror');
    expect(ownership('m', record('m', { latest: dropped, waiting: true })).owner).toBe('mirror');
    expect(ownership('m', record('m', { latest: { operation: 'drop', result: 'failed', at } })).owner).toBe('mirror');
    expect(ownership('m', record('m', { latest: { operation: 'create', result: 'failed', at } }))).toEqual({
      owner: 'mirror',
      reason: 'mirror m: its latest operation is create failed',
    });
  });

  it('calls a name EchoDB never had foreign', () => {
    expect(ownership('theirs', undefined)).toEqual({ owner: 'foreign', reason: 'EchoDB never had a mirror theirs' });
  });
});

describe('formatBytes', () => {
  it('reads like an operator writes sizes', () => {
    expect([0, 512, 1536, 12 * 1024 ** 2, 5.1 * 1024 ** 3, null].map(formatBytes)).toEqual(['0 B', '512 B', '1.5 KiB', '12.0 MiB', '5.1 GiB', 'unknown']);
  });
});

describe('slotWarnings', () => {
  const thresholds = { walWarnBytes: 1024 ** 3, inactiveWarnMs: 900_000 };
  const health = (slots: SlotHealth[], publications: ReplicationHealth['publications'] = []): ReplicationHealth => ({ slots, publications });

  it('warns once when a slot passes SLOT_WAL_WARN_MB, and says when it is back under', () => {
    const reported = new Set<string>();
    const big = slot('m', { retainedBytes: 2 * 1024 ** 3, active: false, inactiveSeconds: 10, inactiveSince: at });
    const first = slotWarnings(health([big]), thresholds, reported);
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ level: 'warn', fields: { slot: 'peerflow_slot_m', mirror: 'm', retained_wal_bytes: 2 * 1024 ** 3 } });
    expect(first[0]!.message).toContain('passed SLOT_WAL_WARN_MB (1.0 GiB): it keeps 2.0 GiB of WAL (wal_status reserved, no max_slot_wal_keep_size)');
    expect(first[0]!.message).toContain('nothing reads it');
    expect(slotWarnings(health([big]), thresholds, reported)).toEqual([]);
    const back = slotWarnings(health([slot('m')]), thresholds, reported);
    expect(back).toEqual([{ level: 'info', fields: { name: 'peerflow_slot_m' }, message: 'slots: peerflow_slot_m retains less WAL than SLOT_WAL_WARN_MB again' }]);
    expect(reported.size).toBe(0);
  });

  it('warns when a slot stays inactive past SLOT_INACTIVE_WARN_SECONDS, with since when', () => {
    const reported = new Set<string>();
    expect(slotWarnings(health([slot('m', { active: false, inactiveSince: at, inactiveSeconds: 899 })]), thresholds, reported)).toEqual([]);
    const [warning] = slotWarnings(health([slot('m', { active: false, inactiveSince: at, inactiveSeconds: 900 })]), thresholds, reported);
    expect(warning!.message).toContain('has been inactive since 2026-12-01T10:00:00.000Z (past SLOT_INACTIVE_WARN_SECONDS, 900 s)');
    expect(slotWarnings(health([slot('m')]), thresholds, reported).map((w) => w.message)).toEqual(['slots: peerflow_slot_m is active again, or gone']);
  });

  it('warns of each orphan and never of a foreign slot; 0 thresholds warn of nothing else', () => {
    const reported = new Set<string>();
    const lines = slotWarnings(
      health(
        [
          slot('gone', { owner: 'orphan', reason: 'EchoDB dropped mirror gone at x', active: false, retainedBytes: 5 * 1024 ** 4 }),
          slot('theirs', { owner: 'foreign', active: false, retainedBytes: 5 * 1024 ** 4, inactiveSeconds: 10 ** 6 }),
        ],
        [{ publication: 'peerflow_pub_gone', mirror: 'gone', owner: 'orphan', reason: 'EchoDB dropped mirror gone at x', tables: 0 }],
      ),
      { walWarnBytes: 0, inactiveWarnMs: 0 },
      reported,
    );
    expect(lines.map((line) => line.message)).toEqual([
      'slots: peerflow_slot_gone is an orphan (EchoDB dropped mirror gone at x); it keeps 5.0 TiB of WAL (wal_status reserved, no max_slot_wal_keep_size); drop it with `echodb slots --drop-orphans`',
      'slots: publication peerflow_pub_gone is an orphan (EchoDB dropped mirror gone at x); drop it with `echodb slots --drop-orphans`',
    ]);
    expect(slotWarnings(health([]), thresholds, reported).map((line) => line.message)).toEqual([
      'slots: peerflow_slot_gone is no longer an orphan (dropped, or its mirror is back)',
      'slots: peerflow_pub_gone is no longer an orphan (dropped, or its mirror is back)',
    ]);
  });

  it('finds the orphans of a reading', () => {
    const orphan = slot('gone', { owner: 'orphan' });
    expect(orphansOf(health([slot('m'), orphan, slot('x', { owner: 'foreign' })]))).toEqual({ slots: [orphan], publications: [] });
  });
});

describe('the replication series', () => {
  const families = async (metrics: ReturnType<typeof createMetrics>) =>
    new Map(parsePrometheusTextFormat(await metrics.registry.metrics()).map((family) => [family.name, family.metrics]));

  it('gives each slot of EchoDB (orphans included, foreign ones not) its gauges, and counts the orphans', async () => {
    const metrics = createMetrics();
    metrics.setReplication({
      slots: [
        slot('m', { safeWalBytes: 4096 }),
        slot('gone', { owner: 'orphan', active: false, walStatus: 'extended', inactiveSince: at, inactiveSeconds: 61.5, confirmedLagBytes: 2048 }),
        slot('later', { owner: 'orphan', active: false, inactiveSeconds: null }),
        slot('theirs', { owner: 'foreign' }),
      ],
      publications: [{ publication: 'peerflow_pub_m', mirror: 'm', owner: 'mirror', reason: '', tables: 3 }],
    });
    const got = await families(metrics);
    const value = (name: string, slotName: string, extra: Record<string, string> = {}) =>
      got.get(name)!.find((m) => m.labels?.slot === slotName && Object.entries(extra).every(([k, v]) => m.labels?.[k] === v))?.value;
    expect(got.get('echodb_replication_slot_active')!.map((m) => [m.labels!.slot, m.value])).toEqual([
      ['peerflow_slot_m', '1'], ['peerflow_slot_gone', '0'], ['peerflow_slot_later', '0'],
    ]);
    expect(value('echodb_replication_slot_retained_wal_bytes', 'peerflow_slot_m')).toBe('1024');
    expect(value('echodb_replication_slot_confirmed_lag_bytes', 'peerflow_slot_gone')).toBe('2048');
    expect(got.get('echodb_replication_slot_safe_wal_bytes')!.map((m) => [m.labels!.slot, m.value])).toEqual([['peerflow_slot_m', '4096']]);
    expect(value('echodb_replication_slot_wal_status', 'peerflow_slot_gone', { wal_status: 'extended' })).toBe('1');
    expect(value('echodb_replication_slot_wal_status', 'peerflow_slot_gone', { wal_status: 'reserved' })).toBe('0');
    // Active: 0 s. Inactive since a known time: its age. Inactive since no one knows when: no series.
    expect(got.get('echodb_replication_slot_inactive_seconds')!.map((m) => [m.labels!.slot, m.value])).toEqual([
      ['peerflow_slot_m', '0'], ['peerflow_slot_gone', '61.5'],
    ]);
    expect(got.get('echodb_replication_publication_tables')).toEqual([{ labels: { mirror: 'm', publication: 'peerflow_pub_m' }, value: '3' }]);
    expect(got.get('echodb_replication_orphans')!.map((m) => [m.labels!.kind, m.value])).toEqual([['slot', '2'], ['publication', '0']]);
    expect(got.get('echodb_replication_slots_readable')![0]!.value).toBe('1');

    metrics.setReplication(null);
    const unreadable = await families(metrics);
    expect(unreadable.get('echodb_replication_slots_readable')![0]!.value).toBe('0');
    expect(unreadable.get('echodb_replication_slot_active') ?? []).toEqual([]);
  });
});
