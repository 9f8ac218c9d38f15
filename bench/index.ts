// `npm run bench [-- trigger|mirrors ...]`: starts throwaway servers, measures, prints tables and writes
// bench/results/<date>.json. Without arguments it runs every benchmark.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalServers } from '../lib/local-servers/index.js';
import { measureMirrorLifecycle } from './mirror-lifecycle.js';
import { measureTriggerOverhead } from './trigger-overhead.js';

const chosen = new Set(process.argv.slice(2));
const runs = (name: string) => chosen.size === 0 || chosen.has(name);
const results: Record<string, unknown> = {};

const servers = await startLocalServers();
try {
  if (runs('trigger')) {
    const statements = Number(process.env.BENCH_STATEMENTS ?? 500);
    console.log(`bench trigger: CREATE TABLE latency, ${statements} statements each, with and without EchoDB's triggers`);
    const overhead = await measureTriggerOverhead(servers.settings.postgres, statements);
    console.table({
      'without triggers': overhead.withoutTriggers,
      'with triggers + listener': overhead.withTriggers,
      added: { p50Ms: overhead.addedP50Ms, p99Ms: overhead.addedP99Ms },
    });
    console.log(`target: at most 1 ms added at p50 -> ${overhead.addedP50Ms <= 1 ? 'met' : 'NOT met'}`);
    results.triggerOverhead = overhead;
  }
  if (runs('mirrors')) {
    const tables = Number(process.env.BENCH_TABLES ?? 500);
    const lifecycle = [];
    for (const strategy of ['per-schema', 'per-table'] as const) {
      console.log(`bench mirrors: ${tables} tables created in one transaction, ${strategy} ...`);
      lifecycle.push(await measureMirrorLifecycle(servers.settings, strategy, tables));
    }
    console.table(
      Object.fromEntries(
        lifecycle.map((r) => [
          r.strategy,
          {
            'PeerDB requests': r.peerdbRequestsTotal,
            'slots used': r.replicationSlotsUsed,
            'all verified (s)': r.secondsUntilAllVerified,
            'matching': r.verifiedMatching,
            'signal->request p50 (ms)': r.signalToPeerDbRequestMs.p50,
            'signal->request p99 (ms)': r.signalToPeerDbRequestMs.p99,
          },
        ]),
      ),
    );
    results.mirrorLifecycle = lifecycle;
  }

  const dir = fileURLToPath(new URL('results/', import.meta.url));
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30) };
  fs.writeFileSync(file, `${JSON.stringify({ machine, ...results }, null, 2)}\n`);
  console.log(`bench: wrote ${path.relative(process.cwd(), file)}`);
} finally {
  await servers.stop();
}
