import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ServerSettings } from '../test/servers/index.js';
import { startBenchStack } from './api-stack.js';
import { round } from './stats.js';
import { createTablesInOneTransaction, waitForVerifications } from './tables.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface MemoryBenchResult {
  /** `tsx`: `node --import tsx cli/echodb.ts` (as the tests run it); `compiled`: `node dist/cli/echodb.js`. */
  build: 'tsx' | 'compiled';
  tables: number;
  /** VmRSS once started (worker RUNNING, API answering), median over the idle window. */
  idleMiB: number;
  /** Highest VmRSS sampled (every 200 ms) from the CREATE TABLEs until every table was verified. */
  peakMiB: number;
  /** VmRSS when the last table was verified. */
  allVerifiedMiB: number;
  /** VmRSS at the end of the settle window after that. */
  settledMiB: number;
  /** The kernel's high-water mark of the process's RSS (VmHWM), at the end. */
  highWaterMiB: number;
  secondsUntilAllVerified: number;
}

/** VmRSS and VmHWM of a process, in MiB. */
function status(pid: number) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1]);
  return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The resident memory of one `echodb run --roles worker,listener,api` process: idle after start-up, then while
 * `tables` tables created in one transaction are mirrored and verified (its listener dispatches them), and once
 * it settled. Returns undefined for the compiled build when `npm run build` has not been run.
 */
export async function measureMemory(
  servers: ServerSettings,
  build: MemoryBenchResult['build'],
  tables: number,
  idleSeconds: number,
  settleSeconds: number,
): Promise<MemoryBenchResult | undefined> {
  const entry = build === 'tsx' ? ['--import', 'tsx', 'cli/echodb.ts'] : ['dist/cli/echodb.js'];
  if (build === 'compiled' && !fs.existsSync(`${ROOT}dist/workflow-bundle.js`)) {
    console.log('bench memory: no dist/ with its workflow bundle (npm run build): compiled build skipped');
    return undefined;
  }
  const { stack, api } = await startBenchStack(servers, {}, ['worker']);
  // The stack's own worker gives way to the process measured here, whose pid this benchmark knows.
  await stack.worker.stop();
  const child = spawn(process.execPath, [...entry, 'run', '--roles', 'worker,listener,api'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ECHODB_ENV_FILE: '/nonexistent/.env', ...stack.env },
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const pid = child.pid!;
  let sampling = true;
  let peak = 0;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, status(pid).rss);
      await sleep(200);
    }
  })();
  try {
    const startedAt = Date.now();
    for (;;) {
      const health = await fetch(`${api}/health`)
        .then((response) => response.json() as Promise<{ worker_state?: string }>)
        .catch(() => undefined);
      if (health?.worker_state === 'RUNNING') break;
      if (child.exitCode !== null) throw new Error(`echodb run (${build}) exited with ${child.exitCode}`);
      if (Date.now() - startedAt > 120_000) throw new Error(`echodb run (${build}) not running after 120 s`);
      await sleep(200);
    }
    const idle: number[] = [];
    for (let i = 0; i < idleSeconds * 2; i++) {
      await sleep(500);
      idle.push(status(pid).rss);
    }
    idle.sort((a, b) => a - b);

    peak = 0;
    const { sql, schema } = stack;
    const loadAt = Date.now();
    await createTablesInOneTransaction(sql, schema, tables);
    await waitForVerifications(sql, tables);
    const secondsUntilAllVerified = (Date.now() - loadAt) / 1000;
    const allVerified = status(pid).rss;
    await sleep(settleSeconds * 1000);
    const end = status(pid);
    return {
      build,
      tables,
      idleMiB: round(idle[Math.floor(idle.length / 2)]!, 1),
      peakMiB: round(Math.max(peak, allVerified), 1),
      allVerifiedMiB: round(allVerified, 1),
      settledMiB: round(end.rss, 1),
      highWaterMiB: round(end.hwm, 1),
      secondsUntilAllVerified: round(secondsUntilAllVerified, 1),
    };
  } finally {
    sampling = false;
    await sampler.catch(() => undefined);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await stack.close();
  }
}
