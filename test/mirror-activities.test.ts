/**
 * createMirror in MockActivityEnvironment against a fake PeerDB client and the real PostgreSQL: it reads the source
 * catalog (is each table there, with a key?) before and while it waits. The activities that need no database are
 * tested in test/unit/mirror-activities.test.ts.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MirrorWedged } from '../lib/workflow-safe/peerdb-errors.js';
import { NON_RETRYABLE } from '../workflows/definitions.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { FakePeerDbClient } from './support/fake-peerdb-client.js';
import { activityEnvironment, mirrorActivitiesWith } from './support/mirror-activities.js';

let database: TestDatabase;
let postgres: pg.Pool;
let sql: pg.Client;

beforeAll(async () => {
  database = await createTestDatabase();
  postgres = new pg.Pool(database.settings);
  sql = await database.connect();
});
afterAll(async () => {
  await postgres?.end();
  await database?.drop();
});

const activitiesWith = (peerdb: FakePeerDbClient, env: Record<string, string> = {}) => mirrorActivitiesWith(peerdb, postgres, env);

/** A table in public with a primary key, as the workflow hands it to createMirror. */
async function sourceTable(name: string) {
  await sql.query(`CREATE TABLE public.${name} (id int PRIMARY KEY)`);
  return { schema: 'public', table: name, source: `public.${name}`, destination: name };
}

describe('createMirror', () => {
  it('creates the mirror and heartbeats its states, through SETUP and SNAPSHOT, until it runs', async () => {
    const table = await sourceTable('created_here');
    const peerdb = new FakePeerDbClient('echodb_created', null);
    const { env, heartbeats } = activityEnvironment();

    const outcome = await env.run(() => activitiesWith(peerdb).createMirror('echodb_created', [table]));

    expect(outcome).toEqual({ outcome: 'created', leftOut: [] });
    expect(peerdb.state).toBe('STATUS_RUNNING');
    expect(peerdb.tables).toEqual(['public.created_here']);
    for (const state of ['STATUS_SETUP', 'STATUS_SNAPSHOT']) {
      expect(heartbeats).toContainEqual(expect.stringMatching(new RegExp(`^create echodb_created: ${state} for \\d+ s`)));
    }
  });

  it('asks again while PeerDB still drops the previous mirror of the name, and then creates it', async () => {
    const table = await sourceTable('created_again');
    const peerdb = new FakePeerDbClient('echodb_again', null);
    peerdb.stillDropping = 2;

    const outcome = await activityEnvironment().env.run(() => activitiesWith(peerdb).createMirror('echodb_again', [table]));

    expect(outcome).toMatchObject({ outcome: 'created' });
    expect(peerdb.calls.filter((call) => call.startsWith('createCdcMirror'))).toHaveLength(3);
    expect(peerdb.state).toBe('STATUS_RUNNING');
  });

  it('fails with MirrorWedged, naming the mirror, its state and the table, when a table goes while PeerDB holds it in SETUP', async () => {
    const table = await sourceTable('gone_in_setup');
    const peerdb = new FakePeerDbClient('echodb_wedged', null);
    peerdb.stopAt = 'STATUS_SETUP';
    const { env } = activityEnvironment();
    // The table goes once PeerDB holds the mirror in SETUP; the wait looks at its tables every second here.
    let dropping: Promise<unknown> | undefined;
    env.on('heartbeat', () => {
      if (peerdb.state === 'STATUS_SETUP') dropping ??= sql.query('DROP TABLE public.gone_in_setup');
    });

    const failure = await env.run(() => activitiesWith(peerdb, { MIRROR_STALL_TIMEOUT: '3' }).createMirror('echodb_wedged', [table])).then(
      () => new Error('expected createMirror to fail'),
      (error: unknown) => error as Error,
    );

    await dropping;
    expect(failure).toBeInstanceOf(MirrorWedged);
    expect(failure.message).toMatch(/^mirror echodb_wedged stays STATUS_SETUP: public\.gone_in_setup does not exist/);
    expect(NON_RETRYABLE).toContain(failure.name);
  });
});
