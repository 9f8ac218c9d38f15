import { describe, expect, it } from 'vitest';
import { planChanges } from '../../workflows/plan.js';
import type { TableEvent, TableFacts, TrackedTable } from '../../workflows/model.js';

const event = (table: string, operation: TableEvent['operation'] = 'create', eventId = '1'): TableEvent => ({
  schema: 'public', table, source: `public.${table}`, destination: table, eventId, operation,
});
const facts = (table: string, relationOid: number | null, reason?: string): TableFacts => ({
  schema: 'public', table, relationOid, mirrorable: relationOid !== null && reason === undefined,
  ...(reason && { reason }),
});
const tracked = (table: string, relationOid: number | null): [string, TrackedTable] => [
  `public.${table}`, { schema: 'public', table, source: `public.${table}`, destination: table, relationOid },
];

describe('planning one mirror edit from the catalog', () => {
  it('adds a table that exists and is not in the mirror', () => {
    const plan = planChanges([event('orders')], [facts('orders', 100)], new Map());
    expect(plan.add).toEqual([{ ...tracked('orders', 100)[1] }]);
    expect(plan.remove).toEqual([]);
  });

  it('removes a mirrored table that no longer exists', () => {
    const plan = planChanges([event('orders', 'drop')], [facts('orders', null, 'does not exist')], new Map([tracked('orders', 100)]));
    expect(plan.remove).toEqual([tracked('orders', 100)[1]]);
    expect(plan.add).toEqual([]);
  });

  it('does nothing for a duplicate create of a table already mirrored from the same relation', () => {
    const plan = planChanges([event('orders')], [facts('orders', 100)], new Map([tracked('orders', 100)]));
    expect(plan).toEqual({ add: [], remove: [], adopted: [], skipped: [], repair: [] });
  });

  it('does nothing for a late drop when the table exists again and is mirrored from its new relation', () => {
    const plan = planChanges([event('orders', 'drop')], [facts('orders', 200)], new Map([tracked('orders', 200)]));
    expect(plan.add).toEqual([]);
    expect(plan.remove).toEqual([]);
  });

  it('replaces a table re-created under the same name (create, drop, create): out with the old, in with the new', () => {
    const plan = planChanges([event('orders', 'create', '3')], [facts('orders', 200)], new Map([tracked('orders', 100)]));
    expect(plan.remove).toEqual([tracked('orders', 100)[1]]);
    expect(plan.add).toEqual([tracked('orders', 200)[1]]);
  });

  it('adopts a table PeerDB already held, without a new snapshot', () => {
    const plan = planChanges([event('orders')], [facts('orders', 100)], new Map([tracked('orders', null)]));
    expect(plan.adopted).toEqual([tracked('orders', 100)[1]]);
    expect(plan.add).toEqual([]);
  });

  it('skips, with the reason, a table that cannot be mirrored, and takes it out if it was in', () => {
    const plan = planChanges(
      [event('sessions'), event('cache')],
      [facts('sessions', 300, 'is unlogged: logical replication cannot follow its changes'), facts('cache', null, 'does not exist')],
      new Map([tracked('sessions', 300)]),
    );
    expect(plan.skipped).toEqual([
      { schema: 'public', table: 'sessions', reason: 'is unlogged: logical replication cannot follow its changes' },
      { schema: 'public', table: 'cache', reason: 'does not exist' },
    ]);
    expect(plan.remove).toEqual([tracked('sessions', 300)[1]]);
  });

  it('asks for REPLICA IDENTITY FULL on a mirrored table that lost its key, when the policy lets it (set-full)', () => {
    const plan = planChanges(
      [event('orders')],
      [{ ...facts('orders', 100), needsFullIdentity: true }],
      new Map([tracked('orders', 100)]),
    );
    expect(plan).toEqual({ add: [], remove: [], adopted: [], skipped: [], repair: [tracked('orders', 100)[1]] });
  });

  it('adds a new table without a key when the policy can give it REPLICA IDENTITY FULL, and skips it otherwise', () => {
    const full = planChanges([event('events')], [{ ...facts('events', 400), needsFullIdentity: true }], new Map());
    expect(full.add).toEqual([tracked('events', 400)[1]]);
    const skip = planChanges([event('events')], [facts('events', 400, 'has no primary key and no REPLICA IDENTITY FULL')], new Map());
    expect(skip).toMatchObject({ add: [], skipped: [{ schema: 'public', table: 'events', reason: 'has no primary key and no REPLICA IDENTITY FULL' }] });
  });
});
