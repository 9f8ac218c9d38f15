import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
} from '@temporalio/client';
import type { Config } from './config.js';
import { scheduledVerifyAllWorkflowId, verifyAllScheduleId } from './workflow-safe/workflow-ids.js';
import { workflowTypes } from '../workflows/definitions.js';


/** What the schedule should be for this configuration. Temporal keeps intervals in whole seconds, at least one. */
function wanted(config: Config) {
  const { taskQueue } = config.temporal;
  const everyMs = Math.max(1000, Math.round(config.consistencyChecker.intervalMs / 1000) * 1000);
  return {
    everyMs,
    spec: { intervals: [{ every: everyMs }] },
    action: {
      type: 'startWorkflow' as const,
      workflowType: workflowTypes.verifyAll,
      workflowId: scheduledVerifyAllWorkflowId(taskQueue),
      taskQueue,
      args: [] as unknown[],
    },
    // A run still going when the next is due is let finish; the next is skipped. After an outage, at most one
    // missed run is caught up (a run missed by up to an interval, or a minute).
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: Math.max(everyMs, 60_000), pauseOnFailure: false },
  };
}

function matches(current: ScheduleDescription, target: ReturnType<typeof wanted>): boolean {
  const { spec, action, policies } = current;
  const [interval, ...otherIntervals] = spec.intervals ?? [];
  return (
    interval?.every === target.everyMs &&
    (interval.offset ?? 0) === 0 &&
    otherIntervals.length === 0 &&
    (spec.calendars?.length ?? 0) === 0 &&
    action.type === target.action.type &&
    action.workflowType === target.action.workflowType &&
    action.workflowId === target.action.workflowId &&
    action.taskQueue === target.action.taskQueue &&
    (action.args?.length ?? 0) === 0 &&
    policies.overlap === target.policies.overlap &&
    policies.catchupWindow === target.policies.catchupWindow &&
    policies.pauseOnFailure === target.policies.pauseOnFailure
  );
}

/**
 * Creates the Temporal schedule that runs verifyAllWorkflow every CONSISTENCY_CHECK_INTERVAL, or brings an
 * existing one in line with the configuration. Re-runnable, and safe when replicas call it at once: one creates,
 * the others find it as wanted (or, with differing configurations, the last update wins). Leaves a schedule's
 * paused state and note alone: an operator may have paused it.
 */
export async function ensureVerifyAllSchedule(client: Client, config: Config): Promise<'created' | 'updated' | 'unchanged'> {
  const scheduleId = verifyAllScheduleId(config.temporal.taskQueue);
  const target = wanted(config);
  try {
    await client.schedule.create({ scheduleId, spec: target.spec, action: target.action, policies: target.policies });
    return 'created';
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
  }
  const handle = client.schedule.getHandle(scheduleId);
  if (matches(await handle.describe(), target)) return 'unchanged';
  await handle.update((previous) => ({
    ...previous,
    spec: target.spec,
    action: target.action,
    policies: target.policies,
  }));
  return 'updated';
}

/** Deletes the verify-all schedule (`echodb uninstall`); one that is not there is fine. */
export async function deleteVerifyAllSchedule(client: Client, config: Config): Promise<'deleted' | 'absent'> {
  try {
    await client.schedule.getHandle(verifyAllScheduleId(config.temporal.taskQueue)).delete();
    return 'deleted';
  } catch (error) {
    if (error instanceof ScheduleNotFoundError) return 'absent';
    throw error;
  }
}

/** The interval the schedule runs at for this configuration, in seconds (for messages). */
export function verifyAllIntervalSeconds(config: Config): number {
  return wanted(config).everyMs / 1000;
}
