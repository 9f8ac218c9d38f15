import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { PostgresSettings } from '../servers/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `echodb` from the source tree as a child process, with exactly the environment given; `input` is what its
 * standard input reads before it ends (nothing, by default).
 */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000, input = ''): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', 'cli/echodb.ts', ...args],
      {
        cwd: ROOT,
        // No developer .env may leak into a test.
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ECHODB_ENV_FILE: '/nonexistent/.env', ...env },
        timeout: timeoutMs,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(input);
  });
}

export function postgresEnv(settings: PostgresSettings): Record<string, string> {
  return {
    POSTGRES_HOST: settings.host,
    POSTGRES_PORT: String(settings.port),
    POSTGRES_DB: settings.database,
    POSTGRES_USER: settings.user,
    POSTGRES_PASSWORD: settings.password,
  };
}
