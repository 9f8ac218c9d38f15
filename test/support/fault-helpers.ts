import type pg from 'pg';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startEchoProcess, type EchoProcess } from './echo-process.js';
import { startEchoStack, type EchoStack } from './echo-stack.js';
import { FAST_ELECTION } from './fast-election.js';

/**
 * Fault-matrix helpers shared by test/fault-matrix*.test.ts. With FAULT_DEBUG set, the output of every case is
 * printed as if it had failed (to see where a passing case spends its time).
 */


export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function createTables(sql: pg.Client, schema: string, names: string[]): Promise<void> {
  for (const name of names) await sql.query(`CREATE TABLE ${schema}.${name} (id int PRIMARY KEY)`);
}

export const handledBy = async (sql: pg.Client, worker: string) => {
  const { rows } = await sql.query<{ count: string }>('SELECT count(*) FROM echodb.ddl_events WHERE handled_by = $1', [worker]);
  return Number(rows[0]!.count);
};

/** The lines of a process's output worth reading (the worker's webpack noise left out). */
export const readableLines = (child: EchoProcess, count: number) =>
  child.lines.filter((line) => !/webpack|modules|\[built\]/.test(line)).slice(-count);

/** How long `echodb run` may take to stop gracefully (the worker's shutdownGraceTime is 30 s). */
const STOP_TIMEOUT_MS = 40_000;

/** SIGTERM, and SIGKILL if the process has not exited within `timeoutMs`; false when it had to be killed. */
export async function stopWithin(child: EchoProcess, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const outcome = await Promise.race([child.stop(), timedOut]);
  clearTimeout(timer);
  if (outcome !== 'timeout') return true;
  if (process.env.FAULT_DEBUG) {
    child.kill('SIGUSR2'); // a diagnostic report, when NODE_OPTIONS asks for one
    await sleep(2000); // time for the report to be written: nothing tells when it is
  }
  child.kill('SIGKILL');
  await child.exited;
  return false;
}

/**
 * `echodb run` processes a test starts besides the stack's worker (listener replicas, replacement workers).
 * Registers an afterEach in the calling scope that stops them all, and prints their output when the test failed.
 */
export function echoProcesses() {
  const started: { name: string; child: EchoProcess }[] = [];
  afterEach(async (context) => {
    const processes = started.splice(0);
    // A process that does not exit on SIGTERM is a defect of its own: reported, then killed.
    const hung = (await Promise.all(processes.map(async ({ name, child }) => ((await stopWithin(child, STOP_TIMEOUT_MS)) ? [] : [name])))).flat();
    if (hung.length > 0 || context.task.result?.state === 'fail' || process.env.FAULT_DEBUG) {
      for (const { name, child } of processes) console.log(`--- ${name} output:\n${readableLines(child, process.env.FAULT_DEBUG ? 400 : 80).join('\n')}`);
    }
    if (hung.length > 0) throw new Error(`${hung.join(', ')} did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM (killed)`);
  });

  /** Any `echodb run`, stopped after the test. */
  async function start(name: string, env: Record<string, string>, roles = ['worker']): Promise<EchoProcess> {
    const child = await startEchoProcess(env, roles);
    started.push({ name, child });
    return child;
  }

  /** `echodb run --roles listener` as a replica of its own; the stack's worker runs the workflows. */
  function startListener(stack: EchoStack, name: string, env: Record<string, string> = {}): Promise<EchoProcess> {
    return start(name, { ...stack.env, ...FAST_ELECTION, ...env, WORKER_ID: name }, ['listener']);
  }

  /** Two listeners; resolves once one of them leads, with the leader first. */
  async function startPair(stack: EchoStack, env: Record<string, string>) {
    const [a, b] = await Promise.all([startListener(stack, 'replica-a', env), startListener(stack, 'replica-b', env)]);
    const leader = await Promise.any([a, b].map(async (replica) => (await replica.waitForLine(/is leader/), replica)));
    return leader === a
      ? { leader: a, follower: b, leaderName: 'replica-a', followerName: 'replica-b' }
      : { leader: b, follower: a, leaderName: 'replica-b', followerName: 'replica-a' };
  }

  return { start, startListener, startPair };
}

/** What reportOnFailure prints from: the database to ask (a live client), the double, the stack's worker. */
export type ReportTarget = Pick<EchoStack, 'sql' | 'peerdb' | 'worker'>;

/** Prints what the outbox, the double and the worker saw when a case fails. */
export function reportOnFailure(stack: () => ReportTarget | undefined) {
  afterEach(async (context) => {
    const current = stack();
    if ((context.task.result?.state !== 'fail' && !process.env.FAULT_DEBUG) || !current) return;
    const outbox = await current.sql
      .query('SELECT status, failed_attempts > 0 AS failed_before, count(*) FROM echodb.ddl_events GROUP BY 1, 2')
      .then(({ rows }) => JSON.stringify(rows), (error: unknown) => `unreadable: ${String(error)}`);
    const mirrors = current.peerdb.mirrors().map(({ name, status, error, tables }) => ({ name, status, error, tables: tables.length }));
    console.log(
      `--- outbox: ${outbox}\n--- PeerDB double's mirrors: ${JSON.stringify(mirrors)}` +
        `\n--- worker output:\n${readableLines(current.worker, process.env.FAULT_DEBUG ? 400 : 60).join('\n')}`,
    );
  });
}

/**
 * A stack of the calling describe block's own (started before its cases, closed after them), with
 * reportOnFailure; `use` receives it once started. `overrides` and `options` go to startEchoStack.
 */
export function ownStack(
  use: (stack: EchoStack) => void,
  overrides?: Parameters<typeof startEchoStack>[0],
  options?: Parameters<typeof startEchoStack>[2],
): void {
  let stack: EchoStack | undefined;
  reportOnFailure(() => stack);
  beforeAll(async () => {
    stack = await startEchoStack(overrides, undefined, options);
    use(stack);
  });
  afterAll(async () => {
    await stack?.close();
  });
}
