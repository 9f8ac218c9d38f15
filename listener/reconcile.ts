import type { Client } from '@temporalio/client';
import { reconcileWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import { workflowTypes } from '../workflows/definitions.js';
import type { ReconcileReport } from '../workflows/model.js';
import type { reconcileWorkflow } from '../workflows/reconcile-workflow.js';

/** Starts reconcile, or joins the one that runs; returns its handle. */
export async function startReconcile(client: Client, taskQueue: string) {
  return client.workflow.start<typeof reconcileWorkflow>(workflowTypes.reconcile, {
    workflowId: reconcileWorkflowId(taskQueue),
    taskQueue,
    args: [],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}

export async function reconcile(client: Client, taskQueue: string): Promise<ReconcileReport> {
  const handle = await startReconcile(client, taskQueue);
  return handle.result();
}
