import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporalBinary } from './servers/binaries.js';
import { runCli } from './support/cli.js';
import { startEchoStack, type EchoStack } from './support/echo-stack.js';

describe('echodb replay', () => {
  let stack: EchoStack;
  /** A real verify workflow (the batch that verified a mirrored table), run by the worker. */
  let workflowId: string;
  let dir: string;

  beforeAll(async () => {
    stack = await startEchoStack();
    await stack.sql.query(`CREATE TABLE ${stack.schema}.replayed (id int PRIMARY KEY)`);
    await stack.sql.query(`INSERT INTO ${stack.schema}.replayed SELECT generate_series(1, 3)`);
    await stack.dispatchPending();
    const [verification] = await stack.waitForVerification('replayed');
    workflowId = verification!.workflow_id;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echodb-replay-'));
  });

  afterAll(async () => {
    await stack?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('replays a workflow fetched from Temporal against the current code and says it is deterministic', async () => {
    const result = await runCli(['replay', workflowId], stack.env);

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^replay: .* \(run [0-9a-f-]{36}\): deterministic, \d+ events\n$/);
    expect(result.stdout).toContain(`replay: ${workflowId} (run `);
  });

  it('exits 3 and names the nondeterminism when other workflow code would decide differently', async () => {
    const result = await runCli(['replay', workflowId, '--workflows', 'test/fixtures/nondeterministic-workflows.ts'], stack.env);

    expect(result.code).toBe(3);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^replay: .* \(run [0-9a-f-]{36}\): nondeterministic: \[TMPRL1100\] Nondeterminism error: /);
  });

  it('replays a history exported with `temporal workflow show -o json`, without Temporal, under the ID it records', async () => {
    const { address, namespace } = stack.config.temporal;
    const { stdout } = await promisify(execFile)(
      temporalBinary(),
      ['workflow', 'show', '-w', workflowId, '-o', 'json', '--address', address, '--namespace', namespace],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    const file = path.join(dir, 'history.json');
    fs.writeFileSync(file, stdout);

    const result = await runCli(['replay', '--file', file]);

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toContain(`replay: ${workflowId} (run `);
    expect(result.stdout).toMatch(/: deterministic, \d+ events\n$/);
    const misnamed = await runCli(['replay', 'echodb-verify:another', '--file', file]);
    expect(misnamed.code).toBe(2);
    expect(misnamed.stderr).toContain(`holds the history of ${workflowId}, not of echodb-verify:another`);
  });

  it('fails with exit 1 for a workflow Temporal does not know', async () => {
    const result = await runCli(['replay', 'echodb-no-such-workflow'], stack.env);

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^echodb: could not fetch the history on Temporal at .*not found/i);
  });
});
