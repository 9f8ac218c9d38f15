import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const RUNNER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'chdb-runner.py');
const INSTALL = 'pip install chdb (scripts/install.sh installs it)';

/** chdb (current ClickHouse, in-process) behind test/support/chdb-runner.py: one Python process, one session. */
export interface Chdb {
  /** The chdb package's version and the ClickHouse version inside it. */
  readonly versions: { chdb: string; clickhouse: string };
  /** Runs one statement; its answer as text, in `format`. Rejects with ClickHouse's message when it fails. */
  query(sql: string, format?: string): Promise<string>;
  close(): Promise<void>;
}

interface Answer {
  id?: number;
  ok?: boolean;
  data?: string;
  error?: string;
  ready?: boolean;
  chdb?: string;
  clickhouse?: string;
}

/**
 * Starts chdb. Never skips: without python3 or without chdb it rejects with a message naming the install command,
 * so that a machine without chdb fails the test instead of passing it untested.
 */
export async function startChdb(python = 'python3'): Promise<Chdb> {
  const child = spawn(python, [RUNNER], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => undefined); // a runner that died is reported through `exited`
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<string>((resolve) => {
    child.on('error', (error) => resolve(`${python} could not start: ${error.message}`));
    child.on('exit', (code, signal) => resolve(`the chdb runner exited (${signal ?? `status ${code}`}): ${stderr.trim()}`));
  });
  const pending = new Map<number, { resolve(answer: Answer): void }>();
  const lines = readline.createInterface({ input: child.stdout });
  let first: ((answer: Answer) => void) | undefined;
  const ready = new Promise<Answer>((resolve) => (first = resolve));
  lines.on('line', (line) => {
    const answer = JSON.parse(line) as Answer;
    if (first) {
      first(answer);
      first = undefined;
    } else if (answer.id !== undefined) {
      pending.get(answer.id)?.resolve(answer);
      pending.delete(answer.id);
    }
  });
  void exited.then((why) => {
    first?.({ ready: false, error: why });
    for (const request of pending.values()) request.resolve({ ok: false, error: why });
    pending.clear();
  });

  const hello = await ready;
  if (!hello.ready || !hello.chdb || !hello.clickhouse) {
    child.kill();
    throw new Error(`chdb is not available to ${python}: ${hello.error ?? 'no answer'}. Install it: ${INSTALL}`);
  }
  let nextId = 0;
  return {
    versions: { chdb: hello.chdb, clickhouse: hello.clickhouse },
    async query(sql, format = 'JSONEachRow') {
      const id = ++nextId;
      const answer = await new Promise<Answer>((resolve) => {
        pending.set(id, { resolve });
        child.stdin.write(`${JSON.stringify({ id, sql, format })}\n`);
      });
      if (!answer.ok) throw new Error(answer.error ?? 'chdb gave no answer');
      return answer.data ?? '';
    },
    async close() {
      child.stdin.end();
      await exited;
    },
  };
}
