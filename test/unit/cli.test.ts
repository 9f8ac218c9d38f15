import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

describe('echodb CLI', () => {
  it('stops before touching anything when the configuration is bad: exit 78, one line per variable', async () => {
    const result = await runCli(['setup'], {
      POSTGRES_HOST: '127.0.0.1',
      POSTGRES_PORT: 'five',
      MIRROR_STRATEGY: 'per-database',
    });

    expect(result.code).toBe(78);
    const lines = result.stderr.trim().split('\n');
    expect(lines[0]).toBe('invalid configuration:');
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(/^ {2}POSTGRES_PORT: "five" /),
      expect.stringMatching(/^ {2}MIRROR_STRATEGY: "per-database" .*per-schema.*per-table/),
    ]);
  });

  it('answers --help for the program and each command, and exit 2 for an unknown command', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    const commands = ['setup', 'uninstall', 'run', 'reconcile', 'verify', 'verify-all', 'status', 'cleanup', 'replay', 'demo'];
    for (const command of commands) expect(help.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));

    const commandHelps = await Promise.all(commands.map((command) => runCli([command, '--help'])));
    commands.forEach((command, i) => {
      expect(commandHelps[i]!.code, command).toBe(0);
      expect(commandHelps[i]!.stdout).toMatch(new RegExp(`^Usage: echodb ${command}`));
    });
    expect(commandHelps[commands.indexOf('verify')]!.stdout).toContain('Exit codes: 0 all match; 3 the counts differ; 1');

    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
  });
});
