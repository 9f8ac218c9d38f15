import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { RequestLogEntry } from './peerdb-double/index.js';
import { duplicatedRequests } from './support/end-state.js';
import { FAULT_KINDS, STATEMENT_KINDS, runSoak, seededRandom } from './support/soak.js';
import { testServers } from './support/servers.js';

// The one-minute soak (the ten-minute one is `npm run soak`). A fresh seed each run, printed so that a failure can
// be replayed with SOAK_SEED=<seed>; SOAK_SECONDS does not apply here.
const seed = process.env.SOAK_SEED === undefined ? crypto.randomInt(2 ** 31) : Number(process.env.SOAK_SEED);

it('converges after a minute of random DDL and inserts in three schemas, with PeerDB faults and replica crashes', async () => {
  const summary = await runSoak({
    servers: testServers(),
    durationMs: 60_000,
    seed,
    schemas: 3,
    convergeTimeoutMs: 90_000,
    // SOAK_ARTIFACTS=<dir> keeps the run's record (replica logs, statements, PeerDB requests, outbox, histories).
    ...(process.env.SOAK_ARTIFACTS && { artifactsDir: process.env.SOAK_ARTIFACTS }),
  });
  const context = `seed ${seed}: ${JSON.stringify({ ...summary, peerdbRequests: summary.peerdbRequests.total })}`;

  // The run did what it claims: every statement kind, and faults of at least two kinds, really happened.
  for (const kind of STATEMENT_KINDS) expect(summary.statements[kind], `${kind} statements, ${context}`).toBeGreaterThan(0);
  const faultKinds = FAULT_KINDS.filter((kind) => summary.faults[kind] > 0);
  expect(faultKinds.length, `fault kinds injected, ${context}`).toBeGreaterThanOrEqual(2);
  expect(summary.tablesCreated, context).toBeGreaterThan(10);
  expect(summary.schemas).toHaveLength(3);
  // User DDL never failed, and the end state held: every table in exactly one running mirror (or left out with its
  // reason), nothing gone still mirrored, no slot or publication left behind, nothing undispatched, nothing asked
  // of PeerDB twice.
  expect(summary.statementErrors, context).toEqual([]);
  expect(summary.problems, context).toEqual([]);
  expect(summary.secondsToConverge, context).not.toBeNull();
  // Every table is in a mirror, but those left out with their reason (CREATE TABLE AS makes no primary key).
  expect(summary.mirrors.reduce((sum, mirror) => sum + mirror.tables, 0), context).toBe(summary.finalTables - summary.unmirroredTables);
  // Every event was handled by one of the two replicas.
  for (const who of Object.keys(summary.handledBy)) expect(['replica-a', 'replica-b'], context).toContain(who);
}, 360_000);

it('repeats the same choices for the same seed', () => {
  const draws = (seed: number) => Array.from({ length: 5 }, seededRandom(seed));
  expect(draws(42)).toEqual(draws(42));
  expect(draws(42)).not.toEqual(draws(43));
  expect(draws(7).every((x) => x >= 0 && x < 1)).toBe(true);
});

describe('the end-state check of duplicated requests', () => {
  let clock = 0;
  const request = (path: string, body: unknown, status: number | undefined): RequestLogEntry => ({
    at: new Date(++clock),
    method: 'POST',
    path,
    body,
    status,
  });
  const create = (tables: string[], status: number | undefined) =>
    request('/v1/flows/cdc/create', { connectionConfigs: { flowJobName: 'm', tableMappings: tables.map((t) => ({ sourceTableIdentifier: t })) } }, status);
  const edit = (add: string[], remove: string[], status: number | undefined) =>
    request('/v1/mirrors/state_change', {
      flowJobName: 'm',
      requestedFlowState: 'STATUS_RUNNING',
      flowConfigUpdate: {
        cdcFlowConfigUpdate: {
          additionalTables: add.map((t) => ({ sourceTableIdentifier: t })),
          removedTables: remove.map((t) => ({ sourceTableIdentifier: t })),
        },
      },
    }, status);
  const drop = (status: number | undefined) => request('/v1/mirrors/state_change', { flowJobName: 'm', requestedFlowState: 'STATUS_TERMINATING' }, status);

  it('flags a create, add, remove or drop that repeats an answered one', () => {
    expect(duplicatedRequests([create(['s.a'], 200), create(['s.a'], 200)])).toEqual(['mirror m created twice']);
    expect(duplicatedRequests([create(['s.a'], 200), edit(['s.a'], [], 200)])).toEqual(['s.a added twice to m']);
    expect(duplicatedRequests([create(['s.a', 's.b'], 200), edit([], ['s.b'], 200), edit([], ['s.b'], 200)])).toEqual(['s.b removed twice from m']);
    expect(duplicatedRequests([create(['s.a'], 200), drop(200), drop(200)])).toEqual(['mirror m dropped twice']);
    // Refused requests changed nothing.
    expect(duplicatedRequests([create(['s.a'], 503), create(['s.a'], 200), edit(['s.b'], [], 503), edit(['s.b'], [], 200)])).toEqual([]);
  });

  it('does not flag what follows a request that went unanswered (it may or may not have been applied)', () => {
    // The client timed out, the double applied the add anyway; EchoDB saw it in the next status and removed it once.
    expect(duplicatedRequests([create(['s.a'], 200), edit(['s.b'], [], undefined), edit([], ['s.b'], 200)])).toEqual([]);
    // A create that timed out, then retried.
    expect(duplicatedRequests([create(['s.a'], undefined), create(['s.a'], 200), drop(200)])).toEqual([]);
    // An unanswered drop of a mirror already dropped: its answer might have been 404.
    expect(duplicatedRequests([create(['s.a'], 200), drop(200), drop(undefined), create(['s.a'], 200)])).toEqual([]);
    // Once an answered request settled it, a repeat is a duplicate again.
    expect(duplicatedRequests([create(['s.a'], undefined), drop(200), drop(200)])).toEqual(['mirror m dropped twice']);
  });
});
