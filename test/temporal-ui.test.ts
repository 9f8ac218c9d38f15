import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { chromium, type Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** docs/temporal-ui.png is refreshed on request (ECHODB_UPDATE_SCREENSHOT=1); otherwise the shot goes to a temp file. */
const SCREENSHOT = process.env.ECHODB_UPDATE_SCREENSHOT === '1'
  ? fileURLToPath(new URL('../docs/temporal-ui.png', import.meta.url))
  : path.join(os.tmpdir(), `echodb-temporal-ui-${process.pid}.png`);
/** Debian's chromium (apt), which playwright-core drives; CHROMIUM_PATH points at another one. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** `echodb demo` without --exit, as a user runs it: prints as it goes, keeps running until SIGINT. */
function startDemo() {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/echodb.ts', 'demo'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ECHODB_ENV_FILE: '/nonexistent/.env' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    output: () => output,
    async waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(output);
        if (match) return match;
        if (child.exitCode !== null) throw new Error(`echodb demo exited (${child.exitCode}):\n${output}`);
        if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    /** Ctrl-C, then wait for the demo to stop everything; returns the exit code. */
    interrupt(): Promise<number | null> {
      if (child.exitCode === null) child.kill('SIGINT');
      return exited;
    },
  };
}

/** Opens a page of the UI and returns its main content's text once every one of `expected` shows. */
async function pageText(page: Page, url: string, expected: (string | RegExp)[]): Promise<string> {
  await page.goto(url);
  const main = page.locator('main');
  for (const text of expected) {
    await main.getByText(text).first().waitFor({ timeout: 20_000 }).catch(async (error: unknown) => {
      throw new Error(`${String(error)}\n${url} shows:\n${await main.innerText()}`);
    });
  }
  return main.innerText();
}

describe('the Temporal UI', () => {
  it("lists the demo's mirror workflow, and finds it and each table's verification by EchoDB's search attributes", async () => {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(
        `no chromium at ${CHROMIUM}: this test drives a real browser. Install it with ` +
          '`sudo apt-get install --no-install-recommends chromium` (or `bash scripts/install.sh`), ' +
          'or set CHROMIUM_PATH to a Chromium executable',
      );
    }
    const demo = startDemo();
    let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
    try {
      await demo.waitFor(/Ctrl-C stops everything/, 80_000);
      const ui = (await demo.waitFor(/^Temporal UI +(http:\S+)$/m))[1]!;
      const psql = (await demo.waitFor(/^PostgreSQL +psql '([^']+)'$/m))[1]!;

      // A table of the user's own, made in psql while the demo runs, is mirrored and verified too.
      const sql = new pg.Client(psql);
      await sql.connect();
      try {
        await sql.query('BEGIN');
        await sql.query('CREATE TABLE items (id int PRIMARY KEY, name text)');
        await sql.query("INSERT INTO items VALUES (1, 'pen'), (2, 'ink')");
        await sql.query('COMMIT');
      } finally {
        await sql.end();
      }
      await demo.waitFor(/verify {2}public\.items: match \(PostgreSQL 2 rows, ClickHouse 2 rows\)/, 30_000);

      // Root may not use Chromium's sandbox.
      browser = await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
      const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
      const query = (text: string) => `${ui}?query=${encodeURIComponent(text)}`;

      const mirrorWorkflow = 'echodb-mirror:echodb_public';
      // Each edit's tables are verified together by one batch workflow, named after its first table.
      const verifyWorkflows = [/echodb-verify-tables:echodb_public:\S+:public\.orders/, /echodb-verify-tables:echodb_public:\S+:public\.items/];
      expect(await pageText(page, ui, [mirrorWorkflow])).toContain(mirrorWorkflow);

      // The mirror's whole story under one search: its own workflow and the verification of each table.
      const found = await pageText(page, query('EchoDbMirror="echodb_public"'), [mirrorWorkflow, ...verifyWorkflows]);
      expect(found).toContain(mirrorWorkflow);
      await page.screenshot({ path: SCREENSHOT });
      expect(fs.statSync(SCREENSHOT).size).toBeGreaterThan(10_000);

      // What verified one table, and when: the batch that listed it in EchoDbTables (and the mirror's edit).
      const items = await pageText(page, query('EchoDbTables="public.items"'), [verifyWorkflows[1]!]);
      expect(items).not.toMatch(verifyWorkflows[0]!);

      const other = await pageText(page, query('EchoDbMirror="echodb_elsewhere"'), ['No Workflows Found']);
      expect(other).not.toContain(mirrorWorkflow);
    } finally {
      await browser?.close();
      const code = await demo.interrupt();
      expect(code, demo.output()).toBe(0);
    }
    const dir = /servers ready in [\d.]+ s, in (\S+)$/m.exec(demo.output())?.[1];
    expect(demo.output()).toContain(`is removed`);
    expect(fs.existsSync(dir!)).toBe(false);
  }, 90_000);
});
