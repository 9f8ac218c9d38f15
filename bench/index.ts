// `npm run bench [-- trigger|mirrors|listener|api|verify-all|verify|diff|memory|retention|slots ...]`: starts throwaway servers, measures, prints tables and writes
// bench/results/<date>.json. Without arguments it runs every benchmark.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalServers } from '../test/servers/index.js';
import { measureApi } from './api.js';
import { measureDiff } from './diff.js';
import { measureDispatchLatency, measureDispatchSteps, measureFailover } from './listener.js';
import { measureMirrorLifecycle } from './mirror-lifecycle.js';
import { measureMemory } from './memory.js';
import { measureRetention } from './retention.js';
import { measureSlots } from './slots.js';
import { measureTriggerOverhead } from './trigger-overhead.js';
import { measureVerify } from './verify.js';
import { measureVerifyAll } from './verify-all.js';

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
    const tables = Number(process.env.BENCH_TABLES ?? 1000);
    const lifecycle = [];
    const strategies = (process.env.BENCH_STRATEGIES ?? 'per-schema,per-table').split(',') as ('per-schema' | 'per-table')[];
    const unknown = strategies.filter((strategy) => strategy !== 'per-schema' && strategy !== 'per-table');
    if (unknown.length > 0) throw new Error(`BENCH_STRATEGIES: unknown strategy ${unknown.join(', ')} (per-schema, per-table)`);
    for (const strategy of strategies) {
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
            'all added (s)': r.secondsUntilAllAdded,
            'all verified (s)': r.secondsUntilAllVerified,
            'matching': r.verifiedMatching,
            'signal->request p50 (ms)': r.signalToPeerDbRequestMs.p50,
            'signal->request p99 (ms)': r.signalToPeerDbRequestMs.p99,
          },
        ]),
      ),
    );
    const perSchema = lifecycle.find((r) => r.strategy === 'per-schema');
    if (perSchema) {
      console.log(`target (per-schema): every table verified at most 30 s after the commit -> ${perSchema.secondsUntilAllVerified <= 30 ? 'met' : 'NOT met'}`);
    }
    results.mirrorLifecycle = lifecycle;
  }
  if (runs('listener')) {
    const events = Number(process.env.BENCH_EVENTS ?? 1000);
    const rate = Number(process.env.BENCH_RATE ?? 50);
    const failovers = Number(process.env.BENCH_FAILOVERS ?? 5);
    console.log(`bench listener: DDL commit -> signal accepted by Temporal (dispatched_at), ${events} events per run`);
    const latency = await measureDispatchLatency(servers.settings, events, rate);
    console.table(
      Object.fromEntries(
        latency.map((r) => [
          `${r.backend} lease, ${r.mode === 'paced' ? `paced ${r.ratePerSecond}/s` : 'back to back'}${r.withWorker ? '' : ', no worker'}`,
          {
            events: r.events,
            'issued/s': r.achievedRatePerSecond,
            batches: r.batches,
            'p50 (ms)': r.commitToDispatchedMs.p50,
            'p99 (ms)': r.commitToDispatchedMs.p99,
            'max (ms)': r.commitToDispatchedMs.max,
            'mean (ms)': r.commitToDispatchedMs.mean,
            'p50 <= 15 ms': r.commitToDispatchedMs.p50 <= 15 ? 'met' : 'NOT met',
            'p99 <= 50 ms': r.commitToDispatchedMs.p99 <= 50 ? 'met' : 'NOT met',
          },
        ]),
      ),
    );
    console.log('bench listener: where a lone event\'s time goes (the drain steps timed one by one, worker running)');
    const steps = await measureDispatchSteps(servers.settings, 'postgres', Math.min(events, 200), rate);
    console.table(steps.stepsMs);
    console.log(`bench listener: failover, ${failovers} runs per case (signal to the follower's "is leader" line)`);
    const failover = await measureFailover(servers.settings, failovers);
    console.table(
      Object.fromEntries(
        failover.map((r) => {
          // SIGKILL: the lease must run out (at most TTL) and a follower's next attempt take it (interval).
          const boundMs = r.signal === 'SIGKILL' ? (r.ttlSeconds + r.intervalSeconds) * 1000 : 1000;
          return [
            `${r.backend}, ${r.signal}`,
            {
              'TTL / interval (s)': `${r.ttlSeconds} / ${r.intervalSeconds}`,
              runs: r.runs,
              'median (ms)': r.medianMs,
              'max (ms)': r.maxMs,
              target: r.signal === 'SIGKILL' ? `<= TTL + interval (${boundMs} ms)` : '< 1000 ms',
              'max within target': (r.signal === 'SIGKILL' ? r.maxMs <= boundMs : r.maxMs < boundMs) ? 'met' : 'NOT met',
            },
          ];
        }),
      ),
    );
    results.listener = { dispatchLatency: latency, dispatchSteps: steps, failover };
  }
  if (runs('api')) {
    const tables = Number(process.env.BENCH_API_TABLES ?? 500);
    const history = Number(process.env.BENCH_API_HISTORY ?? 48);
    const requests = Number(process.env.BENCH_API_REQUESTS ?? 200);
    const concurrency = Number(process.env.BENCH_VERIFY_CONCURRENCY ?? 4);
    console.log(
      `bench api: ${tables} mirrored tables with ${history} older verifications each; ${requests} sequential ` +
        `requests per endpoint, then verify-all at VERIFY_CONCURRENCY ${concurrency}`,
    );
    const api = await measureApi(servers.settings, tables, history, requests, concurrency);
    console.log(`bench api: ${api.verificationRows} rows in echodb.verifications`);
    console.table(api.latencyMs);
    console.log(`bench api: verify-all of ${api.verifyAll.matched} matching tables took ${api.verifyAll.seconds} s`);
    console.log(`bench api: resident memory of the echodb run process afterwards: ${api.residentMemoryMiB} MiB`);
    results.api = api;
  }
  if (runs('verify-all')) {
    const tables = Number(process.env.BENCH_TABLES ?? 1000);
    const repetitions = Number(process.env.BENCH_VERIFY_ALL_RUNS ?? 3);
    console.log(`bench verify-all: ${tables} mirrored tables, all matching, GET /verify-all ${repetitions} times at the default settings`);
    const verifyAll = await measureVerifyAll(servers.settings, tables, repetitions);
    console.table(Object.fromEntries(verifyAll.runs.map((run, i) => [`run ${i + 1}`, {
      'verify-all (s)': run.seconds,
      'of which reconcile (s)': run.reconcileSeconds,
      matched: run.matched,
      'batch workflows': run.batches,
    }])));
    console.log(
      `bench verify-all: VERIFY_BATCH_SIZE ${verifyAll.batchSize}, VERIFY_CONCURRENCY ${verifyAll.concurrency}; median ` +
        `${verifyAll.medianSeconds} s; target: at most 10 s -> ${verifyAll.medianSeconds <= 10 ? 'met' : 'NOT met'}`,
    );
    results.verifyAll = verifyAll;
  }

  if (runs('verify')) {
    const rows = Number(process.env.BENCH_VERIFY_ROWS ?? 1_000_000);
    const repetitions = Number(process.env.BENCH_VERIFY_REPETITIONS ?? 7);
    console.log(`bench verify: a ${rows}-row table, on-demand verify (GET /verify) vs the two raw scans, ${repetitions} times`);
    const verify = await measureVerify(servers.settings, rows, repetitions);
    console.log(`bench verify: mirrored (all ${rows} rows live in ClickHouse) ${verify.secondsUntilMirrored} s after commit`);
    console.table(Object.fromEntries(Object.entries(verify.samplesMs).map(([name, sample]) => [name, {
      'median (ms)': verify.medianMs[name as keyof typeof verify.medianMs],
      'min (ms)': Math.min(...sample),
      'max (ms)': Math.max(...sample),
    }])));
    console.table({ 'ratio to both raw scans in parallel': verify.ratio });
    results.verify = verify;
  }
  if (runs('diff')) {
    const rows = Number(process.env.BENCH_DIFF_ROWS ?? 1_000_000);
    const repetitions = Number(process.env.BENCH_DIFF_REPETITIONS ?? 3);
    const reladiffSpec = process.env.BENCH_DIFF_RELADIFF ?? 'reladiff[postgresql]==0.6.0';
    console.log(
      `bench diff: a ${rows}-row table, EchoDB's row diff (PostgreSQL to ClickHouse) vs reladiff (PostgreSQL to a ` +
        `PostgreSQL copy) vs the two raw count scans, with no differences and with 10, ${repetitions} runs each`,
    );
    const diff = await measureDiff(servers.settings, { rows, repetitions, reladiffSpec });
    console.log('bench diff: peak RSS of processes that do nothing (GNU time %M, like the tools)');
    console.table(Object.fromEntries(Object.entries(diff.baselinesMiB).map(([name, mib]) => [name, { 'peak memory (MiB)': mib }])));
    for (const result of diff.cases) {
      console.log(`bench diff: ${result.case} (medians of ${repetitions} runs; peak memory: the highest run's)`);
      console.table({
        ...Object.fromEntries(result.tools.map((tool) => [tool.tool, {
          'wall (s)': tool.medianSeconds,
          'peak memory (MiB)': tool.peakMiB ?? '-',
          'differences found': tool.found,
          exact: tool.error === undefined ? (tool.exact ? 'yes' : 'NO') : `error: ${tool.error.slice(0, 80)}`,
        }])),
        ...Object.fromEntries(Object.entries(result.rawScans).map(([scan, { medianSeconds }]) => [scan, {
          'wall (s)': medianSeconds,
          'peak memory (MiB)': '-',
          'differences found': '-',
          exact: '-',
        }])),
      });
      const targets = result.targets;
      if (targets) {
        const mark = (met: boolean) => (met ? 'met' : 'NOT met');
        console.log(
          `bench diff: targets (${targets.build}): at most 2 s (${targets.seconds} s) ${mark(targets.withinTwoSeconds)}; ` +
            `at most 100 MiB (${targets.peakMiB ?? '-'} MiB) ${mark(targets.within100MiB)}; all 10 exact, no false ` +
            `difference ${mark(targets.allTenExact)}; faster than reladiff ${mark(targets.fasterThanReladiff)} -> ` +
            `${targets.met ? 'all met' : 'NOT all met'}`,
        );
      }
    }
    results.diff = diff;
  }
  if (runs('memory')) {
    const tables = Number(process.env.BENCH_MEMORY_TABLES ?? 500);
    const idleSeconds = Number(process.env.BENCH_MEMORY_IDLE_SECONDS ?? 15);
    const settleSeconds = Number(process.env.BENCH_MEMORY_SETTLE_SECONDS ?? 30);
    const memory = [];
    for (const build of ['tsx', 'compiled'] as const) {
      console.log(`bench memory: one echodb run --roles worker,listener,api (${build}), idle, then ${tables} tables created and verified`);
      const result = await measureMemory(servers.settings, build, tables, idleSeconds, settleSeconds);
      if (result !== undefined) memory.push(result);
    }
    console.table(Object.fromEntries(memory.map((r) => [r.build, {
      'idle RSS (MiB)': r.idleMiB,
      'peak RSS under load (MiB)': r.peakMiB,
      'RSS when all verified (MiB)': r.allVerifiedMiB,
      [`settled after ${settleSeconds} s (MiB)`]: r.settledMiB,
      'VmHWM (MiB)': r.highWaterMiB,
      'all verified (s)': r.secondsUntilAllVerified,
    }])));
    results.memory = memory;
  }

  if (runs('slots')) {
    const counts = (process.env.BENCH_SLOTS ?? '10,100,500').split(',').map(Number);
    console.log(`bench slots: reading slot health with ${counts.join(', ')} slots and publications (half EchoDB's, a quarter orphans, a quarter foreign)`);
    const figures = [];
    for (const count of counts) figures.push(await measureSlots(servers.settings.postgres, count));
    console.table(Object.fromEntries(figures.map((f) => [`${f.slots} slots`, {
      'read p50 (ms)': f.readMs.p50, 'read p95 (ms)': f.readMs.p95, 'record p50 (ms)': f.recordMs.p50, 'record p95 (ms)': f.recordMs.p95,
    }])));
    results.slots = figures;
  }
  if (runs('retention')) {
    const options = {
      tables: Number(process.env.BENCH_RETENTION_TABLES ?? 1000),
      days: Number(process.env.BENCH_RETENTION_DAYS ?? 30),
      everyMinutes: Number(process.env.BENCH_RETENTION_EVERY_MINUTES ?? 15),
      eventsPerDay: Number(process.env.BENCH_RETENTION_EVENTS_PER_DAY ?? 1000),
      requests: Number(process.env.BENCH_RETENTION_REQUESTS ?? 50),
    };
    console.log(
      `bench retention: ${options.days} days of verify-all every ${options.everyMinutes} min over ${options.tables} tables, ` +
        `${options.eventsPerDay} dispatched events and mirror operations a day; then a cleanup with the default retention`,
    );
    const retention = await measureRetention(servers.settings, options);
    console.log(`bench retention: filled in ${retention.fillSeconds} s; cleanup of rows older than ${retention.retentionDays} days, ${retention.batchSize} rows a statement`);
    console.table(Object.fromEntries(Object.keys(retention.before).map((table) => [table, {
      'rows before': retention.before[table]!.rows,
      'MiB before': retention.before[table]!.totalMiB,
      'rows after': retention.after[table]!.rows,
      'MiB after (VACUUM)': retention.after[table]!.totalMiB,
    }])));
    console.table(Object.fromEntries(Object.entries(retention.latencyMs).map(([name, { before, after }]) => [name, {
      'p50 before (ms)': before.p50,
      'p95 before (ms)': before.p95,
      'p50 after (ms)': after.p50,
      'p95 after (ms)': after.p95,
    }])));
    console.table(Object.fromEntries(retention.cleanup.tables.map((t) => [t.table, {
      deleted: t.deleted,
      batches: t.batches,
      'longest batch (ms)': t.longestBatchMs,
    }])));
    const inserts = retention.insertsDuringCleanupMs;
    console.log(
      `bench retention: cleanup took ${retention.cleanup.seconds} s, its longest batch ${retention.cleanup.longestBatchMs} ms; ` +
        `${inserts.count} verification INSERTs meanwhile: p50 ${inserts.p50} ms, p95 ${inserts.p95} ms, max ${inserts.max} ms`,
    );
    results.retention = retention;
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
