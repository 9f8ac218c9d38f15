import { describe, expect, it } from 'vitest';
import { MirrorFailed, MirrorStalled, PeerDbInvalidRequest } from '../../lib/workflow-safe/peerdb-errors.js';
import { searchAttributes } from '../../lib/workflow-safe/search-attributes.js';
import { mirrorWorkflowId } from '../../lib/workflow-safe/workflow-ids.js';
import type { DestinationCollision, MirrorTable } from '../../workflows/model.js';
import { until } from '../support/until.js';
import { StubWorld, table, uniqueMirror } from './stub-world.js';

// The mirror workflow against stubbed activities (test/workflows/stub-world.ts): each test drives one path through
// workflows/mirror-workflow.ts and workflows/mirror-edit.ts and checks the calls and records it leaves.

describe('the mirror workflow, with stubbed activities', () => {
  it('creates the mirror for a new table, records it, and starts its verify workflow', async () => {
    const world = new StubWorld();
    const mirror = uniqueMirror('create');
    const orders = table('orders');
    world.create(orders);
    await world.run(async (client) => {
      await world.send(client, mirror, [world.event(orders)]);
      await world.untilVerifications(1);
      expect(await world.state(client, mirror)).toMatchObject({ exists: true, tables: [{ source: 'app.orders' }], pendingEvents: 0 });
    });
    expect(world.operationLines()).toEqual(['create succeeded app.orders']);
    expect(world.callsOf('ensurePeers')).toHaveLength(1);
    expect(world.verifications[0]).toMatchObject({ mirror, table: 'orders', status: 'match' });
  });

  it('verifies the tables of one edit in batches of VERIFY_BATCH_SIZE, each batch counted with one call', async () => {
    const world = new StubWorld();
    world.settings.verify = { ...world.settings.verify, batchSize: 2 };
    const mirror = uniqueMirror('batches');
    const added = ['a', 'b', 'c', 'd', 'e'].map((name) => table(name));
    world.create(...added);
    await world.run(async (client) => {
      await world.send(client, mirror, added.map((t) => world.event(t)));
      await world.untilVerifications(5);
      // One batch workflow per two tables, found by the mirror, each listing its tables in EchoDbTables.
      const listed = async () => {
        const found: string[] = [];
        const query = `EchoDbMirror = '${mirror}' AND WorkflowType = 'verifyTablesWorkflow'`;
        for await (const info of client.workflow.list({ query })) found.push(String(info.searchAttributes.EchoDbTables));
        return found.sort();
      };
      expect(await until(listed, (found) => found.length === 3)).toEqual(['app.a,app.b', 'app.c,app.d', 'app.e']);
    });
    const counted = world.callsOf('countTables').map(([batch]) => (batch as MirrorTable[]).map((t) => t.table).join(','));
    expect(counted.sort()).toEqual(['a,b', 'c,d', 'e']);
    expect(world.callsOf('countRows')).toEqual([]);
    expect(world.callsOf('recordVerifications')).toHaveLength(3);
    expect(world.verifications.map((v) => v.table).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('verifies tables whose names are PostgreSQL\'s longest, cutting batches to fit Temporal\'s 2 KB search attribute', async () => {
    const world = new StubWorld();
    const mirror = uniqueMirror('long_names');
    // 63-byte names, each character 2 bytes in JSON: EchoDbTables of 100 of them would take about 25 KB.
    const schema = '"'.repeat(63);
    const added = Array.from({ length: 40 }, (_, i) => table(`${'\\'.repeat(60)}${String(i).padStart(3, '0')}`, schema));
    world.create(...added);
    await world.run(async (client) => {
      await world.send(client, mirror, added.map((t) => world.event(t)));
      await world.untilVerifications(added.length);
      // The mirror's own EchoDbTables (the edit's tables) is cut to fit too: Temporal refuses the whole workflow task
      // of an upsert past 2 KB, again and again.
      const handle = client.workflow.getHandle(mirrorWorkflowId(mirror));
      const listed = await until(async () => (await handle.describe()).typedSearchAttributes.get(searchAttributes.tables), (value) => value !== undefined);
      expect(listed).toEqual(added.slice(0, listed!.length).map((t) => `${t.schema}.${t.table}`));
      const history = await handle.fetchHistory();
      expect((history.events ?? []).filter((e) => e.workflowTaskFailedEventAttributes)).toEqual([]);
    });
    const batches = world.callsOf('countTables').map(([batch]) => (batch as MirrorTable[]).length);
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.reduce((sum, n) => sum + n, 0)).toBe(added.length);
  });

  it('applies an event delivered twice once', async () => {
    const world = new StubWorld();
    const mirror = uniqueMirror('dedupe');
    const orders = table('orders');
    world.create(orders);
    const event = world.event(orders);
    await world.run(async (client) => {
      await world.send(client, mirror, [event, event]);
      await world.untilOperations(1);
      await world.send(client, mirror, [event]);
      await until(() => world.state(client, mirror), (view) => view.pendingEvents === 0);
    });
    expect(world.callsOf('inspectSourceTables')).toHaveLength(1);
    expect(world.operationLines()).toEqual(['create succeeded app.orders']);
  });

  it('drops a mirror PeerDB failed and creates it again with every table it held', async () => {
    const world = new StubWorld();
    const mirror = uniqueMirror('rebuild');
    const [kept, added] = [table('kept'), table('added')];
    world.create(kept, added);
    let failed = false;
    world.override.editMirror = () => {
      failed = true;
      throw new MirrorFailed('mirror failed: STATUS_FAILED');
    };
    await world.run(async (client) => {
      await world.send(client, mirror, [world.event(kept)]);
      await world.untilOperations(1);
      await world.send(client, mirror, [world.event(added)]);
      // Both tables of the new mirror are verified afresh: kept a second time.
      await world.untilVerifications(3);
      expect(world.verifications.map((v) => v.table).sort()).toEqual(['added', 'kept', 'kept']);
      expect((await world.state(client, mirror)).tables.map((t) => t.source).sort()).toEqual(['app.added', 'app.kept']);
    });
    expect(failed).toBe(true);
    expect(world.operationLines()).toEqual([
      'create succeeded app.kept',
      'drop succeeded app.added,app.kept',
      'create succeeded app.added,app.kept',
    ]);
    // Both destinations moved aside, so that the new mirror snapshots into empty tables.
    expect(world.callsOf('retireDestinationTable').map(([destination, how]) => `${String(destination)} ${String(how)}`).sort())
      .toEqual(['added rename', 'kept rename']);
  });

  it('leaves out a table dropped while the create naming it was in flight, and mirrors the rest', async () => {
    const world = new StubWorld();
    const mirror = uniqueMirror('refused');
    const [stays, vanishes] = [table('stays'), table('vanishes')];
    world.create(stays, vanishes);
    let refused = 0;
    world.override.createMirror = (_mirror: string, tables: MirrorTable[]) => {
      if (tables.some((t) => t.source === vanishes.source)) {
        refused++;
        world.drop(vanishes);
        throw new PeerDbInvalidRequest('table app.vanishes does not exist', 400);
      }
      world.mirrors.set(mirror, new Set(tables.map((t) => t.source)));
      return { outcome: 'created', leftOut: [] };
    };
    await world.run(async (client) => {
      await world.send(client, mirror, [world.event(stays), world.event(vanishes)]);
      await world.untilOperations(1);
    });
    expect(refused).toBe(1);
    expect(world.operationLines()).toEqual(['create succeeded app.stays']);
    expect(world.callsOf('releaseDestinations').flatMap(([tables]) => (tables as MirrorTable[]).map((t) => t.source))).toEqual(['app.vanishes']);
  });

  it.each([
    { what: 'a create PeerDB refuses', step: 'createMirror', error: 'PeerDbInvalidRequest: invalid table mapping' },
    { what: 'a refused peer', step: 'ensurePeers', error: 'peers: PeerDbInvalidRequest: invalid table mapping' },
  ] as const)('records $what as the failure of that edit, and the next event tries again', async ({ step, error }) => {
    const world = new StubWorld();
    const mirror = uniqueMirror('refused');
    const orders = table('orders');
    world.create(orders);
    world.override[step] = () => {
      throw new PeerDbInvalidRequest('invalid table mapping', 400);
    };
    await world.run(async (client) => {
      await world.send(client, mirror, [world.event(orders)]);
      await world.untilOperations(1);
      delete world.override[step];
      await world.send(client, mirror, [world.event(orders)]);
      await world.untilOperations(2);
    });
    expect(world.operationLines()).toEqual(['create failed app.orders', 'create succeeded app.orders']);
    expect(world.operations[0]!.error).toBe(error);
    expect(world.callsOf(step)).toHaveLength(2);
  });

  it('records an edit PeerDB never finished (its deadline passed) with the activity\'s reason, and goes on', async () => {
    const world = new StubWorld();
    const mirror = uniqueMirror('stalled');
    const [first, second] = [table('first'), table('second')];
    world.create(first, second);
    await world.run(async (client) => {
      await world.send(client, mirror, [world.event(first)]);
      await world.untilOperations(1);
      world.override.editMirror = () => {
        throw new MirrorStalled(`mirror ${mirror} stayed in STATUS_SNAPSHOT past its deadline`);
      };
      await world.send(client, mirror, [world.event(second)]);
      await world.untilOperations(2);
      expect((await world.state(client, mirror)).tables.map((t) => t.source)).toEqual(['app.first']);
    });
    expect(world.operations[1]).toMatchObject({
      operation: 'add_tables',
      result: 'failed',
      error: `MirrorStalled: mirror ${mirror} stayed in STATUS_SNAPSHOT past its deadline`,
    });
  });

  it('waits DESTINATION_CLAIM_WAIT for a destination held by a table that left, then records the collision', async () => {
    const world = new StubWorld();
    world.settings.claimWaitMs = 1500;
    const mirror = uniqueMirror('claim');
    const orders = table('orders');
    world.create(orders);
    // Held by app2.orders, which is gone from the catalog but whose mirror never releases the claim.
    world.override.claimDestinations = (_mirror: string, tables: MirrorTable[]) => ({
      claimed: [],
      collisions: tables.map((t): DestinationCollision => ({ table: t, heldBy: 'app2.orders' })),
    });
    await world.run(async (client) => {
      await world.send(client, mirror, [world.event(orders)]);
      await world.untilOperations(1);
    });
    expect(world.operations[0]).toMatchObject({
      operation: 'create',
      result: 'failed',
      error: 'NameCollision: ClickHouse table orders already receives app2.orders; app.orders is not mirrored',
    });
    // Claimed again with growing pauses (500 ms, 1 s) until the wait ran out, never a PeerDB call.
    expect(world.callsOf('claimDestinations').length).toBeGreaterThanOrEqual(2);
    expect(world.callsOf('createMirror')).toHaveLength(0);
  });

  it('completes after the idle time when it has no mirror, and a later event starts a fresh run', async () => {
    const world = new StubWorld();
    const mirror = uniqueMirror('idle');
    const ghost = table('ghost');
    await world.run(async (client) => {
      const first = await world.send(client, mirror, [world.event(ghost, 'drop')]);
      await first.result();
      expect((await first.describe()).status.name).toBe('COMPLETED');
      expect(world.callsOf('recordUnmirrored')).toHaveLength(1);

      world.create(ghost);
      const second = await world.send(client, mirror, [world.event(ghost)]);
      expect(second.signaledRunId).not.toBe(first.signaledRunId);
      await world.untilOperations(1);
      expect((await second.describe()).status.name).toBe('RUNNING');
    });
    expect(world.operationLines()).toEqual(['create succeeded app.ghost']);
  });

  it('continues as new when the server suggests it, carrying its tables and the events it has seen', async () => {
    const world = new StubWorld();
    const mirror = uniqueMirror('long');
    const tables = Array.from({ length: 12 }, (_, i) => table(`t${i}`));
    const late = table('late');
    world.create(...tables, late);
    const events = tables.map((t) => world.event(t));
    await world.run(async (client) => {
      const handle = await world.send(client, mirror, [events[0]!]);
      const firstRun = handle.signaledRunId;
      // The workflows project's server suggests continue-as-new after 150 events (test/servers/temporal.ts).
      for (const [i, event] of events.entries()) {
        if (i > 0) await world.send(client, mirror, [event]);
        await world.untilOperations(i + 1);
      }
      const firstRunHandle = client.workflow.getHandle(mirrorWorkflowId(mirror), firstRun);
      await until(async () => (await firstRunHandle.describe()).status.name, (status) => status === 'CONTINUED_AS_NEW');
      // An event the first run applied, delivered again beside a new one, is recognised: only the new one is looked at.
      const inspected = world.callsOf('inspectSourceTables').length;
      await world.send(client, mirror, [events[0]!, world.event(late)]);
      await world.untilOperations(tables.length + 1);
      expect(world.callsOf('inspectSourceTables')[inspected]).toEqual([[{ schema: 'app', table: 'late' }]]);
      const view = await world.state(client, mirror);
      expect(view.tables.map((t) => t.source).sort()).toEqual([...tables, late].map((t) => t.source).sort());
      expect((await client.workflow.getHandle(mirrorWorkflowId(mirror)).describe()).runId).not.toBe(firstRun);
    });
    expect(world.operations).toHaveLength(tables.length + 1);
    // Operation keys stay unique across runs (echodb.mirror_operations dedupes retried records by key).
    expect(new Set(world.operations.map((o) => o.key.split(':')[1])).size).toBe(tables.length + 1);
  });
});
