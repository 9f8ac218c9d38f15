import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { readMigrations } from '../sql/migrations.js';
import { runCli } from './support/cli.js';

function refusesConnections(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('echodb demo', () => {
  it('runs the whole flow on its own servers, shows the sample table mirrored and verified, and cleans up', async () => {
    const result = await runCli(['demo', '--exit'], {}, 85_000);

    expect(result, result.stdout + result.stderr).toMatchObject({ code: 0, stderr: '' });
    const out = result.stdout;
    expect(out).toContain("PeerDB test double: follows PeerDB's Flow API and copies initial snapshots; it does no CDC");
    // Every migration of sql/, in order (outbox, capture_triggers, ...).
    expect(out).toContain(`setup: applied ${readMigrations().map((m) => m.name).join(', ')}; verify-all schedule created`);
    expect(out).toMatch(/outbox {2}event #1 create public\.orders: dispatched to echodb-mirror:echodb_public/);
    expect(out).toMatch(/mirror {2}echodb_public: create public\.orders: succeeded/);
    expect(out).toMatch(/verify {2}public\.orders: match \(PostgreSQL 3 rows, ClickHouse 3 rows\)/);
    const ui = /^Temporal UI +(http:\/\/127\.0\.0\.1:\d+)\/namespaces\/default\/workflows$/m.exec(out)?.[1];
    expect(ui, out).toBeDefined();
    expect(out).toContain(`${ui}/namespaces/default/workflows?query=EchoDbMirror%3D%22echodb_public%22`);
    const api = /curl (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(out)?.[1];
    expect(api, out).toBeDefined();
    expect(out).toMatch(/^PostgreSQL +psql 'postgresql:\/\/postgres:\w+@127\.0\.0\.1:\d+\/postgres'$/m);

    const dir = /servers ready in [\d.]+ s, in (\S+)$/m.exec(out)?.[1];
    expect(dir, out).toMatch(/^\/.*echodb-servers-/);
    expect(out).toContain(`stopped; EchoDB, the test double and the servers are down, ${dir} is removed`);
    expect(fs.existsSync(dir!)).toBe(false);
    // The servers name their directory in their arguments; EchoDB and the Temporal UI no longer listen.
    const processes = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n');
    expect(processes.filter((args) => args.includes(dir!) && !args.includes('ps -eo'))).toEqual([]);
    expect(await refusesConnections(api!)).toBe(true);
    expect(await refusesConnections(ui!)).toBe(true);
  }, 90_000);
});
