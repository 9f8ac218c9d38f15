import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { workflowCode, WORKFLOWS_ENTRY } from '../workers/workflow-code.js';

describe('workflow code from the source', () => {
  it('is bundled once per version of the source, and the same bundle is used again', async () => {
    const first = await workflowCode();
    const codePath = first.workflowBundle && 'codePath' in first.workflowBundle ? first.workflowBundle.codePath : undefined;
    expect(codePath).toMatch(/echodb-workflows\/[0-9a-f]{32}\.js$/);
    expect(fs.readFileSync(codePath!, 'utf8')).toContain('mirrorWorkflow');
    expect(await workflowCode()).toEqual(first);
    expect(WORKFLOWS_ENTRY).toMatch(/workflows\/index\.ts$/);
  }, 60_000);
});
