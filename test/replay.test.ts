import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { WORKFLOWS_ENTRY } from '../workers/worker.js';
import { HISTORIES_DIR } from './support/histories.js';

const fixtures = fs.readdirSync(HISTORIES_DIR).filter((file) => file.endsWith('.json')).sort();

describe('replaying recorded histories against the current workflow code', () => {
  it('has histories of the mirror, verify and reconcile workflows to replay', () => {
    expect(fixtures.some((file) => file.startsWith('mirror-'))).toBe(true);
    expect(fixtures.some((file) => file.startsWith('verify-'))).toBe(true);
    expect(fixtures.some((file) => file.startsWith('reconcile-'))).toBe(true);
  });

  it('replays every one without a nondeterminism error', async () => {
    const histories = fixtures.map((file) => ({
      workflowId: path.basename(file, '.json'),
      history: historyFromJSON(JSON.parse(fs.readFileSync(path.join(HISTORIES_DIR, file), 'utf8'))),
    }));
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories({ workflowsPath: WORKFLOWS_ENTRY }, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${String(result.error)}`);
    }
    expect(failures).toEqual([]);
  }, 120_000);
});
