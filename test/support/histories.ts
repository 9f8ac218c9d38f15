import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';

export const HISTORIES_DIR = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));

/** Set ECHODB_RECORD_HISTORIES=1 to (re)write the replay fixtures from a real run of the lifecycle tests. */
export const recordingHistories = process.env.ECHODB_RECORD_HISTORIES === '1';

/**
 * Writes a workflow's history (its latest run, or `runId`) as <dir>/<name>.json, as `temporal workflow show -o json`
 * gives it; by default into test/fixtures/histories/, for the replay test.
 */
export async function saveHistory(
  client: Client,
  workflowId: string,
  name: string,
  { runId, dir = HISTORIES_DIR }: { runId?: string; dir?: string } = {},
): Promise<void> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}.json`), `${historyToJSON(history)}\n`);
}
