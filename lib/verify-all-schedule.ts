import type { Client } from '@temporalio/client';
import type { Config } from './config.js';
import { deleteSchedule, ensureSchedule, scheduleIntervalMs, type IntervalSchedule } from './schedules.js';
import { scheduledVerifyAllWorkflowId, verifyAllScheduleId } from './workflow-safe/workflow-ids.js';
import { workflowTypes } from '../workflows/definitions.js';
import type { VerifyAllInput } from '../workflows/model.js';

/** What the schedule should be for this configuration. */
function wanted(config: Config): IntervalSchedule {
  const { taskQueue } = config.temporal;
  return {
    scheduleId: verifyAllScheduleId(taskQueue),
    everyMs: scheduleIntervalMs(config.consistencyChecker.intervalMs),
    workflowType: workflowTypes.verifyAll,
    workflowId: scheduledVerifyAllWorkflowId(taskQueue),
    taskQueue,
    args: verifyAllArgs(config),
  };
}

/** verifyAllWorkflow's arguments under this configuration: none for counts (VERIFY_MODE=count), else the mode. */
export function verifyAllArgs(config: Config): [] | [VerifyAllInput] {
  return config.diff.mode === 'count' ? [] : [{ mode: config.diff.mode }];
}

/**
 * Creates the Temporal schedule that runs verifyAllWorkflow every CONSISTENCY_CHECK_INTERVAL, or brings an
 * existing one in line with the configuration (lib/schedules.ts).
 */
export function ensureVerifyAllSchedule(client: Client, config: Config): Promise<'created' | 'updated' | 'unchanged'> {
  return ensureSchedule(client, wanted(config));
}

/** Deletes the verify-all schedule (`echodb uninstall`); one that is not there is fine. */
export function deleteVerifyAllSchedule(client: Client, config: Config): Promise<'deleted' | 'absent'> {
  return deleteSchedule(client, verifyAllScheduleId(config.temporal.taskQueue));
}

/** The interval the schedule runs at for this configuration, in seconds (for messages). */
export function verifyAllIntervalSeconds(config: Config): number {
  return wanted(config).everyMs / 1000;
}
