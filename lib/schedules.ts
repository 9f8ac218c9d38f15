import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
} from '@temporalio/client';

/** A Temporal schedule that starts one workflow type every `everyMs`. */
export interface IntervalSchedule {
  scheduleId: string;
  everyMs: number;
  workflowType: string;
  /** The workflow's arguments (none by default). */
  args?: unknown[];
  /** Temporal appends each run's scheduled time. */
  workflowId: string;
  taskQueue: string;
}

/** An interval as Temporal keeps it: whole seconds, at least one. */
export function scheduleIntervalMs(intervalMs: number): number {
  return Math.max(1000, Math.round(intervalMs / 1000) * 1000);
}

function wanted(schedule: IntervalSchedule) {
  const { everyMs, workflowType, workflowId, taskQueue, args = [] } = schedule;
  return {
    spec: { intervals: [{ every: everyMs }] },
    action: { type: 'startWorkflow' as const, workflowType, workflowId, taskQueue, args },
    // A run still going when the next is due is let finish; the next is skipped. After an outage, at most one
    // missed run is caught up (a run missed by up to an interval, or a minute).
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: Math.max(everyMs, 60_000), pauseOnFailure: false },
  };
}

function matches(current: ScheduleDescription, schedule: IntervalSchedule): boolean {
  const target = wanted(schedule);
  const { spec, action, policies } = current;
  const [interval, ...otherIntervals] = spec.intervals ?? [];
  return (
    interval?.every === schedule.everyMs &&
    (interval.offset ?? 0) === 0 &&
    otherIntervals.length === 0 &&
    (spec.calendars?.length ?? 0) === 0 &&
    action.type === target.action.type &&
    action.workflowType === target.action.workflowType &&
    action.workflowId === target.action.workflowId &&
    action.taskQueue === target.action.taskQueue &&
    JSON.stringify(action.args ?? []) === JSON.stringify(target.action.args) &&
    policies.overlap === target.policies.overlap &&
    policies.catchupWindow === target.policies.catchupWindow &&
    policies.pauseOnFailure === target.policies.pauseOnFailure
  );
}

/**
 * Creates the schedule, or brings an existing one in line with `schedule`. Re-runnable, and safe when replicas
 * call it at once: one creates, the others find it as wanted (or, with differing configurations, the last update
 * wins). Leaves a schedule's paused state and note alone: an operator may have paused it.
 */
export async function ensureSchedule(client: Client, schedule: IntervalSchedule): Promise<'created' | 'updated' | 'unchanged'> {
  const { scheduleId } = schedule;
  const target = wanted(schedule);
  try {
    await client.schedule.create({ scheduleId, spec: target.spec, action: target.action, policies: target.policies });
    return 'created';
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
  }
  const handle = client.schedule.getHandle(scheduleId);
  if (matches(await handle.describe(), schedule)) return 'unchanged';
  await handle.update((previous) => ({
    ...previous,
    spec: target.spec,
    action: target.action,
    policies: target.policies,
  }));
  return 'updated';
}

/** Deletes a schedule; one that is not there is fine. */
export async function deleteSchedule(client: Client, scheduleId: string): Promise<'deleted' | 'absent'> {
  try {
    await client.schedule.getHandle(scheduleId).delete();
    return 'deleted';
  } catch (error) {
    if (error instanceof ScheduleNotFoundError) return 'absent';
    throw error;
  }
}
