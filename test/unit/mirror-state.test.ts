import { describe, expect, it } from 'vitest';
import { MirrorState, SEEN_EVENTS_KEPT } from '../../workflows/mirror-state.js';
import type { TableEvent, TrackedTable } from '../../workflows/model.js';

const tracked = (name: string, relationOid: number | null = 1): TrackedTable => ({
  schema: 'app', table: name, source: `app.${name}`, destination: name, relationOid,
});
const event = (name: string, eventId: string): TableEvent => ({ ...tracked(name), eventId, operation: 'create' });

describe('MirrorState, the mirror workflow\'s bookkeeping', () => {
  it('queues each event id once, oldest first, and hands the queue over whole', () => {
    const state = new MirrorState('m');
    state.receive([event('a', '1'), event('b', '2'), event('a', '1')]);
    state.receive([event('b', '2'), event('c', '3')]);
    expect(state.hasPending).toBe(true);
    expect(state.takePending().map((e) => e.eventId)).toEqual(['1', '2', '3']);
    expect(state.hasPending).toBe(false);
    state.receive([event('a', '1')]);
    expect(state.hasPending).toBe(false);
  });

  it('forgets the oldest event ids beyond SEEN_EVENTS_KEPT, so that a long-lived workflow stays small', () => {
    const state = new MirrorState('m');
    state.receive(Array.from({ length: SEEN_EVENTS_KEPT + 1 }, (_, i) => event('a', String(i))));
    state.takePending();
    expect(state.carried().seenEventIds).toHaveLength(SEEN_EVENTS_KEPT);
    state.receive([event('a', '0')]);
    expect(state.takePending()).toHaveLength(1);
    state.receive([event('a', String(SEEN_EVENTS_KEPT))]);
    expect(state.hasPending).toBe(false);
  });

  it('counts operations across continue-as-new, so that their keys stay unique', () => {
    const first = new MirrorState('m');
    expect([first.nextOperationKey('r1'), first.nextOperationKey('r1')]).toEqual(['r1:1', 'r1:2']);
    const next = new MirrorState('m', first.carried());
    expect(next.nextOperationKey('r2')).toBe('r2:3');
  });

  it('carries its tables, pending events and seen ids into the next run, and exists when it holds tables', () => {
    const state = new MirrorState('m');
    expect(state.exists).toBe(false);
    state.track([tracked('a'), tracked('b')]);
    state.exists = true;
    state.receive([event('c', '9')]);
    const next = new MirrorState('m', state.carried());
    expect(next.exists).toBe(true);
    expect(next.tables.map((t) => t.source)).toEqual(['app.a', 'app.b']);
    expect(next.view()).toMatchObject({ mirror: 'm', exists: true, pendingEvents: 1 });
    next.receive([event('c', '9')]);
    expect(next.takePending()).toHaveLength(1);
  });

  it('tracks, untracks and forgets tables; a table tracked again replaces the old entry', () => {
    const state = new MirrorState('m');
    state.track([tracked('a', 1), tracked('b', 2)]);
    state.track([tracked('a', 3)]);
    expect(state.tables.find((t) => t.source === 'app.a')?.relationOid).toBe(3);
    state.untrack([tracked('b')]);
    expect(state.size).toBe(1);
    state.exists = true;
    state.forget();
    expect([state.size, state.exists]).toEqual([0, false]);
  });

  it('adopts what PeerDB holds on a first run, with relations unknown', () => {
    const state = new MirrorState('m');
    state.adopt({ exists: true, status: 'STATUS_RUNNING', tables: [{ schema: 'app', table: 'a', source: 'app.a', destination: 'a' }] });
    expect(state.exists).toBe(true);
    expect(state.tables).toEqual([{ schema: 'app', table: 'a', source: 'app.a', destination: 'a', relationOid: null }]);
  });
});
