import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { WORKFLOWS_ENTRY } from '../../workers/workflow-code.js';
import { HISTORIES_DIR } from '../support/histories.js';

const fixtures = fs.readdirSync(HISTORIES_DIR).filter((file) => file.endsWith('.json')).sort();

describe('replaying recorded histories against the current workflow code', () => {
  it('has histories of the mirror, verify, batch verify, reconcile, verify-all, cleanup and diff workflows to replay', () => {
    expect(fixtures.some((file) => file.startsWith('mirror-'))).toBe(true);
    expect(fixtures.some((file) => file.startsWith('verify-') && !/^verify-(all|tables)-/.test(file))).toBe(true);
    expect(fixtures.some((file) => file.startsWith('verify-tables-'))).toBe(true);
    expect(fixtures.some((file) => file.startsWith('reconcile-'))).toBe(true);
    expect(fixtures.some((file) => file.startsWith('verify-all-'))).toBe(true);
    expect(fixtures.some((file) => file.startsWith('cleanup-'))).toBe(true);
    expect(fixtures.some((file) => file.startsWith('diff-'))).toBe(true);
  });

  it('replays every one without a nondeterminism error', async () => {
    const histories = fixtures.map((file) => {
      const history = historyFromJSON(JSON.parse(fs.readFileSync(path.join(HISTORIES_DIR, file), 'utf8')));
      // Replayed under the ID it ran with: a workflow may name its children after itself (verify-all does).
      const recordedId = history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowId;
      return { workflowId: recordedId || path.basename(file, '.json'), history };
    });
    const failures: string[] = [];
    let index = 0;
    for await (const result of Worker.runReplayHistories({ workflowsPath: WORKFLOWS_ENTRY }, histories)) {
      if (result.error) failures.push(`${fixtures[index]}: ${String(result.error)}`);
      index++;
    }
    expect(failures).toEqual([]);
  }, 120_000);
});
