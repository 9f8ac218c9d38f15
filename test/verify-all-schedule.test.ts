import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection, ScheduleNotFoundError } from '@temporalio/client';
import { loadConfig } from '../lib/config.js';
import { verifyAllScheduleId } from '../lib/workflow-safe/workflow-ids.js';
import { deleteVerifyAllSchedule, ensureVerifyAllSchedule } from '../lib/verify-all-schedule.js';
import { postgresEnv, runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { testServers } from './support/servers.js';

describe('the verify-all schedule', () => {
  const { temporal: server } = testServers();
  let database: TestDatabase;
  let connection: Connection;
  let client: Client;
  const taskQueues: string[] = [];

  /** The environment of a deployment of its own: a fresh task queue, so a schedule of its own. */
  function deployment(): { env: Record<string, string>; taskQueue: string; scheduleId: string } {
    const taskQueue = `echodb-schedule-test-${crypto.randomBytes(4).toString('hex')}`;
    taskQueues.push(taskQueue);
    const env = {
      ...postgresEnv(database.settings),
      TEMPORAL_ADDRESS: server.address,
      TEMPORAL_NAMESPACE: server.namespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
    };
    return { env, taskQueue, scheduleId: verifyAllScheduleId(taskQueue) };
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    connection = await Connection.connect({ address: server.address });
    client = new Client({ connection, namespace: server.namespace });
  });

  afterAll(async () => {
    for (const taskQueue of taskQueues) {
      await client?.schedule.getHandle(verifyAllScheduleId(taskQueue)).delete().catch(() => undefined);
    }
    await connection?.close();
    await database?.drop();
  });

  it('is created by `setup`, updated when the interval changes, left alone otherwise and deleted by `uninstall`', async () => {
    const { env, taskQueue, scheduleId } = deployment();

    const created = await runCli(['setup', '--no-peers'], { ...env, CONSISTENCY_CHECK_INTERVAL: '600' });
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toContain(`setup: verify-all schedule ${scheduleId} created (every 600 s)`);
    const description = await client.schedule.getHandle(scheduleId).describe();
    expect(description.spec.intervals).toEqual([expect.objectContaining({ every: 600_000 })]);
    expect(description.policies.overlap).toBe('SKIP');
    expect(description.action).toMatchObject({
      type: 'startWorkflow',
      workflowType: 'verifyAllWorkflow',
      workflowId: `echodb-verify-all-scheduled:${taskQueue}`,
      taskQueue,
    });

    const updated = await runCli(['setup', '--no-peers'], { ...env, CONSISTENCY_CHECK_INTERVAL: '900' });
    expect(updated.stdout).toContain(`setup: verify-all schedule ${scheduleId} updated (every 900 s)`);
    expect((await client.schedule.getHandle(scheduleId).describe()).spec.intervals).toEqual([expect.objectContaining({ every: 900_000 })]);

    const unchanged = await runCli(['setup', '--no-peers'], { ...env, CONSISTENCY_CHECK_INTERVAL: '900' });
    expect(unchanged.stdout).toContain(`setup: verify-all schedule ${scheduleId} unchanged (every 900 s)`);

    const removed = await runCli(['uninstall'], env);
    expect(removed).toMatchObject({ code: 0, stderr: '' });
    expect(removed.stdout).toContain(`uninstall: deleted the verify-all schedule ${scheduleId}`);
    await expect(client.schedule.getHandle(scheduleId).describe()).rejects.toThrow(ScheduleNotFoundError);
  });

  it('starts verify-all with VERIFY_MODE=checksum as its argument, and is updated when the mode changes', async () => {
    const { env, scheduleId } = deployment();
    const config = (mode: string) => loadConfig({ envFile: false, env: { ...env, VERIFY_MODE: mode } });
    expect(await ensureVerifyAllSchedule(client, config('count'))).toBe('created');
    expect((await client.schedule.getHandle(scheduleId).describe()).action).toMatchObject({ args: [] });
    expect(await ensureVerifyAllSchedule(client, config('checksum'))).toBe('updated');
    expect((await client.schedule.getHandle(scheduleId).describe()).action).toMatchObject({ args: [{ mode: 'checksum' }] });
    expect(await ensureVerifyAllSchedule(client, config('checksum'))).toBe('unchanged');
    expect(await ensureVerifyAllSchedule(client, config('count'))).toBe('updated');
    expect(await deleteVerifyAllSchedule(client, config('count'))).toBe('deleted');
  });

  it('is created once when replicas ensure it at the same time, and deleting a missing one is fine', async () => {
    const { env } = deployment();
    const config = loadConfig({ envFile: false, env });

    const outcomes = await Promise.all([1, 2, 3].map(() => ensureVerifyAllSchedule(client, config)));

    expect(outcomes.sort()).toEqual(['created', 'unchanged', 'unchanged']);
    expect(await deleteVerifyAllSchedule(client, config)).toBe('deleted');
    expect(await deleteVerifyAllSchedule(client, config)).toBe('absent');
  });

  it('is left alone with --no-schedule, and a Temporal out of reach fails setup after the SQL, saying so', async () => {
    const { env } = deployment();
    const unreachable = { ...env, TEMPORAL_ADDRESS: '127.0.0.1:1' };

    const sqlOnly = await runCli(['setup', '--no-schedule', '--no-peers'], unreachable);
    expect(sqlOnly).toMatchObject({ code: 0, stderr: '' });
    expect(sqlOnly.stdout).not.toContain('schedule');

    const failed = await runCli(['setup', '--no-peers'], unreachable);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/is up to date/);
    expect(failed.stderr).toMatch(
      /^echodb: could not register EchoDB's search attributes on Temporal at 127\.0\.0\.1:1 \(namespace \w+\): .*; the SQL is installed: .*--no-schedule/,
    );

    const removed = await runCli(['uninstall', '--no-schedule'], unreachable);
    expect(removed).toMatchObject({ code: 0, stderr: '' });
    expect(removed.stdout).toMatch(/^uninstall: removed EchoDB's schema/);
  });
});
