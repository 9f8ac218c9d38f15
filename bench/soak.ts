// `npm run soak`: the long soak (test/support/soak.ts). Starts throwaway servers, runs random DDL and inserts in
// several schemas for SOAK_SECONDS (default 600) with faults injected at random against two replicas, waits for
// the end state, prints what it did and writes bench/results/<date>-soak.json (and the run's record, replica logs
// included, into bench/results/<date>-soak/). Exits 1 when the end state is wrong.
//   SOAK_SECONDS   load duration (default 600)
//   SOAK_SEED      the PRNG seed, to repeat a run's statements and faults (default: a fresh one, printed)
//   SOAK_SCHEMAS   watched schemas (default 3, at least 3)
//   SOAK_CONVERGE_SECONDS  how long to wait for the end state (default 180)
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalServers } from '../test/servers/index.js';
import { FAULT_KINDS, STATEMENT_KINDS, runSoak, type SoakSummary } from '../test/support/soak.js';

const number = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, not ${JSON.stringify(raw)}`);
  return value;
};
const seconds = number('SOAK_SECONDS', 600);
const seed = number('SOAK_SEED', crypto.randomInt(2 ** 31));
const schemas = number('SOAK_SCHEMAS', 3);
const convergeSeconds = number('SOAK_CONVERGE_SECONDS', 180);

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const resultsDir = fileURLToPath(new URL('results/', import.meta.url));
let summary: SoakSummary | undefined;
const servers = await startLocalServers();
try {
  console.log(`soak: ${seconds} s, seed ${seed} (SOAK_SEED=${seed} repeats it), ${schemas} schemas`);
  summary = await runSoak({
    servers: servers.settings,
    redis: servers.settings.redis,
    durationMs: seconds * 1000,
    seed,
    schemas,
    convergeTimeoutMs: convergeSeconds * 1000,
    // Replica logs, statements, the double's requests, the outbox, the mirror operations and the mirror
    // workflows' histories, for diagnosis.
    artifactsDir: path.join(resultsDir, `${stamp}-soak`),
  });

  console.log('soak: statements');
  console.table({
    ...Object.fromEntries(STATEMENT_KINDS.map((kind) => [kind, { count: summary!.statements[kind] }])),
    'failed': { count: summary.statementErrors.length },
    'tables created': { count: summary.tablesCreated },
    'tables dropped': { count: summary.tablesDropped },
    'tables at the end': { count: summary.finalTables },
    'tables left out (no primary key)': { count: summary.unmirroredTables },
  });
  console.log('soak: faults');
  console.table(Object.fromEntries(FAULT_KINDS.map((kind) => [kind, { injected: summary!.faults[kind] }])));
  console.table(summary.faultLog.map(({ kind, atSeconds, seconds: lasted, detail }) => ({ 'at (s)': atSeconds, kind, 'lasted (s)': lasted, detail })));
  console.log('soak: PeerDB requests (the double\'s log)');
  console.table({ ...summary.peerdbRequests.byPath, total: summary.peerdbRequests.total });
  console.table(summary.peerdbRequests.byStatus);
  console.table({
    'load (s)': summary.loadSeconds,
    'time to converge (s)': summary.secondsToConverge ?? 'never',
    'leader elections': summary.leaderElections,
    'events handled': Object.entries(summary.handledBy).map(([who, count]) => `${who} ${count}`).join(', '),
    'mirrors': summary.mirrors.map((m) => `${m.name} ${m.status} (${m.tables} tables)`).join('; '),
    'total (s)': summary.totalSeconds,
  });
  if (summary.problems.length > 0) {
    console.log(`soak: the end state is WRONG (seed ${seed}):\n  ${summary.problems.join('\n  ')}`);
  } else {
    console.log(`soak: end state correct, converged in ${summary.secondsToConverge} s`);
  }

  fs.mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${stamp}-soak.json`);
  const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30) };
  fs.writeFileSync(file, `${JSON.stringify({ machine, soak: summary }, null, 2)}\n`);
  console.log(`soak: wrote ${path.relative(process.cwd(), file)}`);
} finally {
  await servers.stop();
}
process.exitCode = summary !== undefined && summary.problems.length === 0 && summary.statementErrors.length === 0 ? 0 : 1;
