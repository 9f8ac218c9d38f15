import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { InvalidArgumentError } from 'commander';
import { historyFromJSON, type History } from '@temporalio/common/lib/proto-utils.js';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { workflowCode } from '../workers/workflow-code.js';

export interface ReplayedHistory {
  workflowId: string;
  /** The run the history belongs to (the run it started as, when it was reset). */
  runId: string | null;
  events: number;
  /** Why the code is not deterministic with this history; null when it is. */
  nondeterminism: string | null;
}

/**
 * Lets only the SDK's warnings through (bundling and the replay worker's state changes are noise here), and
 * only errors of its native core, whose warning repeats the nondeterminism the command reports.
 */
export function quietTemporalRuntime(): void {
  Runtime.install({
    logger: new DefaultLogger('WARN'),
    telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, console: {} } },
  });
}

/**
 * A history as `temporal workflow show -w ID -o json` prints it (Temporal's proto JSON), and the workflow ID it
 * ran under: the one the file records, which `workflowId`, when given, must match. Workflows derive IDs from
 * their own (verify-all names its reconcile child after itself), so replaying under another ID would report a
 * nondeterminism that is not there.
 */
export function readHistoryFile(file: string, workflowId?: string): { workflowId: string; history: History } {
  const history = historyFromJSON(JSON.parse(fs.readFileSync(file, 'utf8')));
  const recorded = history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowId || undefined;
  if (recorded !== undefined && workflowId !== undefined && recorded !== workflowId) {
    throw new InvalidArgumentError(`${file} holds the history of ${recorded}, not of ${workflowId}`);
  }
  const id = workflowId ?? recorded;
  if (id === undefined) throw new InvalidArgumentError(`${file} does not say which workflow it is the history of: name it`);
  return { workflowId: id, history };
}

/** The history of a workflow's latest run, or of the run given. */
export function fetchWorkflowHistory(client: Client, workflowId: string, runId?: string): Promise<History> {
  return client.workflow.getHandle(workflowId, runId).fetchHistory();
}

/**
 * Replays a history against workflow code: the current code by default (what a worker of this build runs), or
 * the workflows entry at `workflowsPath`, e.g. a new release's, to check it against production histories before
 * deploying it. `workflowId` must be the one the workflow ran with: workflows derive IDs from it. A
 * nondeterminism is a finding, returned; any other failure to replay is thrown.
 */
export async function replayHistory(history: History, workflowId: string, workflowsPath?: string): Promise<ReplayedHistory> {
  const code = workflowsPath === undefined ? await workflowCode() : { workflowsPath: path.resolve(workflowsPath) };
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  const replayed = { workflowId, runId: started?.originalExecutionRunId || null, events: history.events?.length ?? 0 };
  try {
    await Worker.runReplayHistory(code, history, workflowId);
  } catch (error) {
    if (error instanceof DeterminismViolationError) return { ...replayed, nondeterminism: coreMessage(error.message) };
    throw error;
  }
  return { ...replayed, nondeterminism: null };
}

/** The native core's own words (`[TMPRL1100] Nondeterminism error: ...`) out of the SDK's wrapping, when found. */
function coreMessage(message: string): string {
  return /message: "((?:[^"\\]|\\.)*)"/.exec(message)?.[1] ?? message;
}
