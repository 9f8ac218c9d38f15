// `npm run bench`: starts a throwaway PostgreSQL, measures, prints a table and writes bench/results/<date>.json.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalServers } from '../lib/local-servers/index.js';
import { measureTriggerOverhead } from './trigger-overhead.js';

const statements = Number(process.env.BENCH_STATEMENTS ?? 500);
const servers = await startLocalServers({ only: ['postgres'] });
try {
  console.log(`bench: CREATE TABLE latency, ${statements} statements each, with and without EchoDB's triggers ...`);
  const overhead = await measureTriggerOverhead(servers.settings.postgres, statements);
  console.table({
    'without triggers': overhead.withoutTriggers,
    'with triggers + listener': overhead.withTriggers,
    added: { p50Ms: overhead.addedP50Ms, p99Ms: overhead.addedP99Ms },
  });
  console.log(`target: at most 1 ms added at p50 -> ${overhead.addedP50Ms <= 1 ? 'met' : 'NOT met'}`);

  const dir = fileURLToPath(new URL('results/', import.meta.url));
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30) };
  fs.writeFileSync(file, `${JSON.stringify({ machine, triggerOverhead: overhead }, null, 2)}\n`);
  console.log(`bench: wrote ${path.relative(process.cwd(), file)}`);
} finally {
  await servers.stop();
}
