/**
 * The PeerDB activities (activities/mirror-activities.ts, their waits in activities/mirror-wait.ts) in
 * MockActivityEnvironment, against a fake PeerDB client. dropMirror and an edit that only removes tables need
 * nothing else: EchoDB's record of a wait (echodb.mirror_waits) is best effort, so PostgreSQL is left unreachable
 * here. What reads the source catalog is tested with the real PostgreSQL: createMirror in
 * test/mirror-activities.test.ts, adding tables in the mirror lifecycle and fault tests.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { CircuitOpen, MirrorFailed, MirrorNotFound, MirrorStalled, PeerDbInvalidRequest, PeerDbUnavailable, PeerUnreachable } from '../../lib/workflow-safe/peerdb-errors.js';
import { NON_RETRYABLE } from '../../workflows/definitions.js';
import { FakePeerDbClient } from '../support/fake-peerdb-client.js';
import { activityEnvironment, mirrorActivitiesWith } from '../support/mirror-activities.js';

const MIRROR = 'echodb_public';
const table = (name: string) => ({ schema: 'public', table: name, source: `public.${name}`, destination: name });

/** Nothing listens on port 1: PostgreSQL and ClickHouse are out of reach, and none of these activities needs them. */
const postgres = new pg.Pool({ host: '127.0.0.1', port: 1, connectionTimeoutMillis: 200 });
afterAll(() => postgres.end());

const activitiesWith = (peerdb: FakePeerDbClient, env: Record<string, string> = {}) => mirrorActivitiesWith(peerdb, postgres, env);

/** What the activity failed with (it must fail). */
async function failureOf(run: Promise<unknown>): Promise<Error> {
  const outcome = await run.then(
    () => undefined,
    (error: unknown) => error as Error,
  );
  if (!outcome) throw new Error('expected the activity to fail');
  return outcome;
}

describe.concurrent('dropMirror', () => {
  it('sends the drop once and heartbeats, naming the mirror and its state, until PeerDB no longer knows the mirror', async () => {
    const peerdb = new FakePeerDbClient(MIRROR);
    const { env, heartbeats } = activityEnvironment();

    await env.run(() => activitiesWith(peerdb).dropMirror(MIRROR));

    expect(peerdb.state).toBeNull();
    expect(peerdb.calls.filter((call) => call.startsWith('dropMirror'))).toEqual([`dropMirror ${MIRROR}`]);
    expect(heartbeats).toContainEqual(expect.stringMatching(new RegExp(`^drop ${MIRROR}: STATUS_RUNNING for \\d+ s$`)));
    expect(heartbeats).toContainEqual(expect.stringMatching(new RegExp(`^drop ${MIRROR}: STATUS_TERMINATING for \\d+ s$`)));
  });

  it('stops polling PeerDB and fails as cancelled when Temporal cancels it in answer to a heartbeat', async () => {
    const peerdb = new FakePeerDbClient(MIRROR);
    peerdb.stuck = true; // the drop never ends by itself
    const { env, heartbeats } = activityEnvironment();
    env.on('heartbeat', () => {
      if (heartbeats.length === 2) env.cancel();
    });

    const failure = await failureOf(env.run(() => activitiesWith(peerdb).dropMirror(MIRROR)));

    expect(failure).toBeInstanceOf(CancelledFailure);
    const polls = peerdb.calls.length;
    // Time passing is what is checked: a cancelled wait must not poll PeerDB again (it polls every 250 ms at first).
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(peerdb.calls.length).toBe(polls);
  });

  it('waits out PeerDB outages in place, heartbeating why, and ends when the drop does', async () => {
    const peerdb = new FakePeerDbClient(MIRROR);
    peerdb.failPolls.push(
      new PeerDbUnavailable('PeerDB answered 503 to POST /v1/mirrors/status', 503),
      new PeerUnreachable('PeerDB could not reach PostgreSQL', 500),
    );
    const { env, heartbeats } = activityEnvironment();

    await env.run(() => activitiesWith(peerdb).dropMirror(MIRROR));

    expect(peerdb.state).toBeNull();
    expect(heartbeats).toContainEqual('PeerDB unavailable: PeerDB answered 503 to POST /v1/mirrors/status');
    expect(heartbeats).toContainEqual('PeerDB unavailable: PeerDB could not reach PostgreSQL');
  });

  it("fails for good on PeerDB's refusal (PeerDbInvalidRequest, a non-retryable type)", async () => {
    const peerdb = new FakePeerDbClient(MIRROR);
    peerdb.refuse.drop = new PeerDbInvalidRequest('PeerDB answered 400: invalid flow job name', 400);

    const failure = await failureOf(activityEnvironment().env.run(() => activitiesWith(peerdb).dropMirror(MIRROR)));

    expect(failure).toBeInstanceOf(PeerDbInvalidRequest);
    expect(NON_RETRYABLE).toContain(failure.name);
  });

  it("fails retryably, after the breaker's wait, while the PeerDB breaker is open, without calling PeerDB", async () => {
    const peerdb = new FakePeerDbClient(MIRROR);
    peerdb.failPolls.push(new CircuitOpen('peerdb_api', 4000));

    const failure = await failureOf(activityEnvironment().env.run(() => activitiesWith(peerdb).dropMirror(MIRROR)));

    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: 'CircuitOpen', nonRetryable: false, nextRetryDelay: 4000 });
    expect(NON_RETRYABLE).not.toContain('CircuitOpen');
    expect(peerdb.calls.filter((call) => call.startsWith('dropMirror'))).toEqual([]);
  });

  it('fails with MirrorStalled, naming the mirror and its state, once MIRROR_STALL_TIMEOUT passes without progress', async () => {
    const peerdb = new FakePeerDbClient(MIRROR, 'STATUS_TERMINATING');
    peerdb.stuck = true;
    const { env, heartbeats } = activityEnvironment();
    const startedAt = Date.now();

    const failure = await failureOf(env.run(() => activitiesWith(peerdb, { MIRROR_STALL_TIMEOUT: '1' }).dropMirror(MIRROR)));

    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1000);
    expect(failure).toBeInstanceOf(MirrorStalled);
    expect(failure.message).toMatch(new RegExp(`^mirror ${MIRROR} has been STATUS_TERMINATING for \\d+ s without progress`));
    expect(NON_RETRYABLE).toContain(failure.name);
    expect(heartbeats).toContainEqual(expect.stringMatching(new RegExp(`^stalled: mirror ${MIRROR} has been STATUS_TERMINATING`)));
  });
});

describe.concurrent('editMirror (removing tables)', () => {
  it("pauses, sends the change to the paused mirror, and waits until it runs again without the tables, as PeerDB's own sequence", async () => {
    const peerdb = new FakePeerDbClient(MIRROR, 'STATUS_RUNNING', ['public.a', 'public.b']);
    const { env, heartbeats } = activityEnvironment();

    const outcome = await env.run(() => activitiesWith(peerdb).editMirror(MIRROR, [], [table('b')]));

    expect(outcome).toEqual({ added: [], removed: ['public.b'], leftOut: [] });
    expect(peerdb.state).toBe('STATUS_RUNNING');
    expect(peerdb.tables).toEqual(['public.a']);
    expect(peerdb.calls.filter((call) => !call.startsWith('mirrorState') && !call.startsWith('mirrorStatus'))).toEqual([
      `pauseMirror ${MIRROR}`,
      `updatePausedMirror ${MIRROR}`,
    ]);
    expect(heartbeats).toContainEqual(expect.stringMatching(new RegExp(`^remove_tables ${MIRROR}: STATUS_PAUSED for \\d+ s$`)));
  });

  it('fails for good on a mirror PeerDB failed (MirrorFailed) or does not know (MirrorNotFound)', async () => {
    const failed = new FakePeerDbClient(MIRROR, 'STATUS_FAILED', ['public.a']);
    const gone = new FakePeerDbClient(MIRROR, null);

    const onFailed = await failureOf(activityEnvironment().env.run(() => activitiesWith(failed).editMirror(MIRROR, [], [table('a')])));
    const onGone = await failureOf(activityEnvironment().env.run(() => activitiesWith(gone).editMirror(MIRROR, [], [table('a')])));

    expect(onFailed).toBeInstanceOf(MirrorFailed);
    expect(onFailed.message).toBe(`mirror ${MIRROR} is STATUS_FAILED; it cannot be edited`);
    expect(onGone).toBeInstanceOf(MirrorNotFound);
    expect(NON_RETRYABLE).toEqual(expect.arrayContaining([onFailed.name, onGone.name]));
    expect(failed.calls.filter((call) => call.startsWith('pauseMirror'))).toEqual([]);
  });

  it('fails with MirrorStalled, naming the mirror and the state it stays in, when a pause never completes', async () => {
    const peerdb = new FakePeerDbClient(MIRROR, 'STATUS_RUNNING', ['public.a', 'public.b']);
    peerdb.stopAt = 'STATUS_PAUSING';

    const failure = await failureOf(
      activityEnvironment().env.run(() => activitiesWith(peerdb, { MIRROR_STALL_TIMEOUT: '1' }).editMirror(MIRROR, [], [table('b')])),
    );

    expect(failure).toBeInstanceOf(MirrorStalled);
    expect(failure.message).toMatch(new RegExp(`^mirror ${MIRROR} has been STATUS_PAUSING for \\d+ s without progress`));
  });
});
