import fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';

export interface ManagedProcessOptions {
  name: string;
  command: string;
  args: string[];
  /** Run as this OS user when we are root (servers such as PostgreSQL refuse to run as root). */
  runAs?: string | undefined;
  logFile: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * A server process in its own process group, its output in a log file. Stopping signals the whole group
 * (runuser and the server it starts), then kills what is left after a grace period.
 */
export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  private child!: ChildProcess;
  private exited!: Promise<void>;
  private exitDescription: string | undefined;
  /** The last readiness check, so that restart() can wait the same way. */
  private readiness: { probe: () => Promise<boolean>; timeoutMs: number } | undefined;

  constructor(private readonly options: ManagedProcessOptions) {
    this.name = options.name;
    this.logFile = options.logFile;
    this.spawn();
  }

  private spawn(): void {
    const { options } = this;
    const [command, args] = asUser(options.runAs, options.command, options.args);
    const log = fs.openSync(options.logFile, 'a');
    this.exitDescription = undefined;
    this.child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitDescription = signal ? `killed by ${signal}` : `exited with code ${code}`;
        resolve();
      });
      this.child.once('error', (error) => {
        this.exitDescription = `could not start: ${error.message}`;
        resolve();
      });
    });
  }

  /**
   * Starts the stopped server again, with the same arguments (port, data), and waits until it is ready. A server
   * that dies while starting is started again, up to 3 times: the Temporal dev server picks its internal ports at
   * random and may pick one that is taken (seen once in CI: "bind: address already in use", then a panic).
   */
  async restart(): Promise<void> {
    if (!this.hasExited) throw new Error(`${this.name} is still running`);
    for (let attempt = 1; ; attempt++) {
      this.spawn();
      if (!this.readiness) return;
      try {
        await this.waitUntilReady(this.readiness.probe, this.readiness.timeoutMs);
        return;
      } catch (error) {
        if (!this.hasExited || attempt >= 3) throw error;
      }
    }
  }

  /** The process group id, which equals the pid of the group leader we spawned. */
  get pgid(): number | undefined {
    return this.child.pid;
  }

  get hasExited(): boolean {
    return this.exitDescription !== undefined;
  }

  /** Polls `probe` until it resolves true; fails early with the log's tail if the process dies meanwhile. */
  async waitUntilReady(probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    this.readiness = { probe, timeoutMs };
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.hasExited) throw new Error(`${this.name} ${this.exitDescription}\n${this.logTail()}`);
      if (await probe().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`${this.name} not ready after ${timeoutMs} ms\n${this.logTail()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (this.hasExited || this.pgid === undefined) return;
    signalGroup(this.pgid, signal);
    const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
    if ((await Promise.race([this.exited, timer])) === 'timeout') {
      signalGroup(this.pgid, 'SIGKILL');
      await this.exited;
    }
    // Children that outlive the leader (none expected) must not survive the run.
    signalGroup(this.pgid, 'SIGKILL');
  }

  /** Immediate, synchronous kill of the whole group, for exit handlers. */
  killNow(): void {
    if (this.pgid !== undefined) signalGroup(this.pgid, 'SIGKILL');
  }

  logTail(lines = 30): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is already gone
  }
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function asUser(user: string | undefined, command: string, args: string[]): [string, string[]] {
  if (user && isRoot()) return ['runuser', ['-u', user, '--', command, ...args]];
  return [command, args];
}
