import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { workflowCode, WORKFLOWS_ENTRY } from '../../workers/workflow-code.js';
import { NON_RETRYABLE, workflowTypes } from '../../workflows/definitions.js';
import * as workflows from '../../workflows/index.js';

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

describe('the Temporal contract (workflows/definitions.ts)', () => {
  it('names each workflow type as the worker registers it: the exported function of workflows/index.ts', () => {
    expect(Object.keys(workflows).sort()).toEqual(Object.values(workflowTypes).sort());
    for (const [name, workflow] of Object.entries(workflows)) expect(workflow.name).toBe(name);
  });

  it("names the failures not retried after their classes, as activities' failures are typed", () => {
    expect(NON_RETRYABLE).toEqual(['PeerDbInvalidRequest', 'MirrorFailed', 'MirrorNotFound', 'MirrorWedged', 'MirrorStalled']);
  });
});
