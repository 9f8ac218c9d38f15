import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface EchoProcess {
  /** Everything the process printed so far, line by line (stdout and stderr). */
  lines: string[];
  /** When each line arrived (Date.now()), index for index with `lines`. */
  lineTimes: number[];
  /** The JSON log lines printed so far, parsed. */
  logEntries(): LogEntry[];
  /** Resolves with the first line matching `pattern` that arrived at or after `since`, and its time. */
  waitForLine(pattern: RegExp, timeoutMs?: number, since?: number): Promise<{ line: string; at: number }>;
  /** Sends a signal without waiting (SIGKILL: no clean-up at all). */
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then wait for the graceful exit; returns the exit code. */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

/** One line of EchoDB's structured log (lib/logger.ts). */
export interface LogEntry {
  level: string;
  msg: string;
  worker_id: string;
  [field: string]: unknown;
}

/** What each role prints once it runs. */
const READY: Record<string, RegExp> = {
  worker: /^(?=.*"msg":"Worker state changed")(?=.*"state":"RUNNING")/,
  listener: /"msg":"listener: .* listening on /,
  api: /"msg":"api: listening on /,
};

/**
 * Runs `echodb run --roles <roles>` from the source tree with exactly this environment (no .env file), as
 * production runs it, and resolves once every role reports that it runs.
 */
export async function startEchoProcess(env: Record<string, string>, roles = ['worker']): Promise<EchoProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/echodb.ts', 'run', '--roles', roles.join(',')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ECHODB_ENV_FILE: '/nonexistent/.env', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const lineTimes: number[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  for (const stream of [child.stdout, child.stderr]) {
    let buffer = '';
    stream.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const complete = buffer.split('\n');
      buffer = complete.pop() ?? '';
      lines.push(...complete);
      lineTimes.push(...complete.map(() => Date.now()));
    });
  }
  const waitForLine = async (pattern: RegExp, timeoutMs = 30_000, since = 0) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = lines.findIndex((line, i) => lineTimes[i]! >= since && pattern.test(line));
      if (index >= 0) return { line: lines[index]!, at: lineTimes[index]! };
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`echodb run exited (${child.exitCode ?? child.signalCode}):\n${lines.join('\n')}`);
      }
      if (Date.now() > deadline) throw new Error(`no line matching ${pattern} within ${timeoutMs} ms:\n${lines.join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  for (const role of roles) await waitForLine(READY[role] ?? /(?!)/, 60_000);
  return {
    lines,
    lineTimes,
    logEntries: () => lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as LogEntry),
    waitForLine,
    kill: (signal) => void child.kill(signal),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    exited,
  };
}
