import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';

export const HISTORIES_DIR = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));

/** Set ECHODB_RECORD_HISTORIES=1 to (re)write the replay fixtures from a real run of the lifecycle tests. */
export const recordingHistories = process.env.ECHODB_RECORD_HISTORIES === '1';

/** Writes a workflow's history as test/fixtures/histories/<name>.json, for the replay test. */
export async function saveHistory(client: Client, workflowId: string, name: string): Promise<void> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  fs.mkdirSync(HISTORIES_DIR, { recursive: true });
  fs.writeFileSync(path.join(HISTORIES_DIR, `${name}.json`), `${historyToJSON(history)}\n`);
}
