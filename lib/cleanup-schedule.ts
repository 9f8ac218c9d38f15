import type { Client } from '@temporalio/client';
import type { Config } from './config.js';
import { deleteSchedule, ensureSchedule, scheduleIntervalMs } from './schedules.js';
import { cleanupScheduleId, scheduledCleanupWorkflowId } from './workflow-safe/workflow-ids.js';
import { workflowTypes } from '../workflows/definitions.js';

/**
 * Creates the Temporal schedule that runs cleanupWorkflow every CLEANUP_INTERVAL, or brings an existing one in
 * line with the configuration (lib/schedules.ts); with CLEANUP_INTERVAL off, deletes the one there is.
 */
export function ensureCleanupSchedule(client: Client, config: Config): Promise<'created' | 'updated' | 'unchanged' | 'deleted' | 'absent'> {
  const { taskQueue } = config.temporal;
  const { intervalMs } = config.retention;
  if (intervalMs === null) return deleteCleanupSchedule(client, config);
  return ensureSchedule(client, {
    scheduleId: cleanupScheduleId(taskQueue),
    everyMs: scheduleIntervalMs(intervalMs),
    workflowType: workflowTypes.cleanup,
    workflowId: scheduledCleanupWorkflowId(taskQueue),
    taskQueue,
  });
}

/** Deletes the cleanup schedule (`echodb uninstall`, CLEANUP_INTERVAL=off); one that is not there is fine. */
export function deleteCleanupSchedule(client: Client, config: Config): Promise<'deleted' | 'absent'> {
  return deleteSchedule(client, cleanupScheduleId(config.temporal.taskQueue));
}

/** What setup and the worker say about the schedule. */
export function describeCleanupSchedule(config: Config, outcome: Awaited<ReturnType<typeof ensureCleanupSchedule>>): string {
  const scheduleId = cleanupScheduleId(config.temporal.taskQueue);
  const { intervalMs, days } = config.retention;
  if (intervalMs === null) {
    return `cleanup schedule ${scheduleId} ${outcome === 'deleted' ? 'deleted' : 'not created'} (CLEANUP_INTERVAL is off)`;
  }
  return `cleanup schedule ${scheduleId} ${outcome} (every ${scheduleIntervalMs(intervalMs) / 1000} s, rows older than ${days} days)`;
}
