import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import pg from 'pg';
import ts from 'typescript';
import type { ServerSettings } from '../test/servers/index.js';
import type { DiffRunOutput, DiffRunTarget } from './diff-run.js';
import { percentile, round } from './stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** GNU time: the wall time and the peak RSS (ru_maxrss of the child and its waited-for descendants) of every tool. */
const GNU_TIME = '/usr/bin/time';

/** The source table (PostgreSQL database SOURCE_DATABASE), its copy for reladiff, its ClickHouse destination. */
const SOURCE_DATABASE = 'bench_diff';
const COPY_DATABASE = 'bench_diff_copy';
const SCHEMA = 'app';
const TABLE = 'big';
const CLICKHOUSE_DATABASE = 'bench_diff';
const DESTINATION = 'big';
const COMPARED_COLUMNS = ['name', 'amount', 'created_at', 'active'];

type Kind = 'missing' | 'extra' | 'changed';

/** A difference between the source table and its destination: `missing` in ClickHouse, `extra` there, `changed`. */
export interface ExpectedDifference {
  id: string;
  kind: Kind;
  /** The columns that differ (for `changed`). */
  columns: string[];
  statement: string;
}

export interface ToolRun {
  wallSeconds: number;
  /** Peak RSS in MiB, GNU time's %M. */
  peakMiB: number;
  /** Distinct keys reported different. */
  found: number;
  /** Every expected difference found, with its kind, and nothing else. */
  exact: boolean;
  /** Expected keys not reported. */
  missed: string[];
  /** Keys reported that are not different. */
  falseDifferences: string[];
  /** Keys reported with another kind than expected. */
  wrongKind: string[];
  /** EchoDB only: every changed row reported with exactly the columns changed. */
  columnsRight?: boolean;
  /** EchoDB only: diffTable's own time, from its call to its answer. */
  diffSeconds?: number;
  error?: string;
}

export interface ToolResult {
  tool: string;
  runs: ToolRun[];
  /** Medians over the runs; peak memory is the highest run's. */
  medianSeconds: number;
  peakMiB: number | null;
  found: number;
  exact: boolean;
  error?: string;
}

export interface DiffCaseResult {
  case: 'no differences' | '10 differences';
  expected: ExpectedDifference[];
  tools: ToolResult[];
  /** The two raw count scans (run in the servers: no client memory to speak of), in s: median and each run's. */
  rawScans: Record<string, { medianSeconds: number; samples: number[] }>;
  /** Only for the 10-difference case: EchoDB's figures against its targets. */
  targets?: DiffTargets;
}

export interface DiffTargets {
  build: string;
  seconds: number;
  peakMiB: number | null;
  withinTwoSeconds: boolean;
  within100MiB: boolean;
  allTenExact: boolean;
  fasterThanReladiff: boolean;
  met: boolean;
}

export interface DiffBenchResult {
  rows: number;
  repetitions: number;
  reladiff: { spec: string; versions: string; command: string; installSeconds: number };
  /** Filling PostgreSQL (source and copy) and ClickHouse, and checking ClickHouse equal to the source. */
  setupSeconds: { postgres: number; clickhouse: number; check: number };
  /** Peak RSS (MiB) of processes that do nothing, measured like the tools: what any run of them costs at least. */
  baselinesMiB: Record<string, number>;
  cases: DiffCaseResult[];
}

export interface DiffBenchOptions {
  rows: number;
  repetitions: number;
  /** What `pip install` is given: `reladiff[postgresql]` brings its PostgreSQL driver, psycopg2-binary. */
  reladiffSpec: string;
}

const sql = {
  createSource: `CREATE TABLE ${SCHEMA}.${TABLE} (
    id bigint PRIMARY KEY, name text, amount numeric(12,2), created_at timestamp, active boolean)`,
  /**
   * Row g (1..rows): id 2g (odd ids stay free for the inserted rows), name NULL every 1000th row, amount from
   * -10000.00 to 10000.00, created_at 97 s apart from 2020-01-01, active unless g is a multiple of 3.
   */
  fillSource: `INSERT INTO ${SCHEMA}.${TABLE}
    SELECT 2 * g,
           CASE WHEN g % 1000 = 0 THEN NULL ELSE 'customer ' || g END,
           ((g * 7919) % 2000001 - 1000000) / 100.0,
           timestamp '2020-01-01 00:00:00' + g * interval '97 seconds',
           g % 3 <> 0
    FROM generate_series(1, $1::bigint) g`,
  /** The PeerDB double's destination table (test/peerdb-double/snapshot.ts), without PEERDB_NULLABLE. */
  createDestination: `CREATE TABLE \`${CLICKHOUSE_DATABASE}\`.\`${DESTINATION}\` (
    \`id\` Int64, \`name\` String, \`amount\` String, \`created_at\` DateTime, \`active\` UInt8,
    \`_peerdb_is_deleted\` UInt8, \`_peerdb_version\` UInt64
  ) ENGINE = ReplacingMergeTree(\`_peerdb_version\`) ORDER BY (\`id\`)`,
  /**
   * The same rows as fillSource, as the double writes them: NULL as '' (the column is not Nullable), numeric as
   * PostgreSQL's text with its two decimals, the timestamp's wall-clock time (the server's timezone is UTC),
   * booleans as 0/1, version 1.
   */
  fillDestination: (rows: number) => `INSERT INTO \`${CLICKHOUSE_DATABASE}\`.\`${DESTINATION}\`
    SELECT toInt64(2 * g),
           if(g % 1000 = 0, '', concat('customer ', toString(g))),
           concat(if(cents < 0, '-', ''), toString(intDiv(abs(cents), 100)), '.',
                  if(abs(cents) % 100 < 10, '0', ''), toString(abs(cents) % 100)),
           toDateTime(1577836800 + g * 97),
           toUInt8(g % 3 != 0),
           toUInt8(0),
           toUInt64(1)
    FROM (SELECT number + 1 AS g, toInt64((number + 1) * 7919 % 2000001) - 1000000 AS cents FROM numbers(${rows}))`,
};

/**
 * The 10 differences made on the source behind the mirror's back (ClickHouse and the copy keep the rows as they
 * were): 5 UPDATEs of different columns, 3 DELETEs (the first row, one inside, the last), 2 INSERTs between
 * existing rows.
 */
export function tenDifferences(rows: number): ExpectedDifference[] {
  if (rows < 1000) throw new Error(`BENCH_DIFF_ROWS: at least 1000 rows (${rows})`);
  // Row g at a fraction of the table, never one whose name is NULL.
  const at = (fraction: number) => {
    const g = Math.floor(rows * fraction) + 1;
    return g % 1000 === 0 ? g + 1 : g;
  };
  const id = (g: number) => String(2 * g);
  const table = `${SCHEMA}.${TABLE}`;
  const update = (g: number, set: string, columns: string[]): ExpectedDifference => ({
    id: id(g),
    kind: 'changed',
    columns,
    statement: `UPDATE ${table} SET ${set} WHERE id = ${id(g)}`,
  });
  const remove = (g: number): ExpectedDifference => ({
    id: id(g),
    kind: 'extra',
    columns: [],
    statement: `DELETE FROM ${table} WHERE id = ${id(g)}`,
  });
  const insert = (g: number): ExpectedDifference => ({
    id: String(2 * g + 1),
    kind: 'missing',
    columns: [],
    statement: `INSERT INTO ${table} VALUES (${2 * g + 1}, 'inserted', 12.50, '2024-06-01 12:00:00', true)`,
  });
  return [
    update(at(0.1), `name = name || ' (edited)'`, ['name']),
    update(at(0.3), 'amount = amount + 0.01', ['amount']),
    update(at(0.5), `created_at = created_at + interval '1 second'`, ['created_at']),
    update(at(0.7), 'active = NOT active', ['active']),
    update(at(0.9), 'name = NULL, amount = amount + 1', ['amount', 'name']),
    remove(1),
    remove(at(0.6)),
    remove(rows),
    insert(at(0.2)),
    insert(at(0.8)),
  ];
}

/** How a tool's report compares with the expected differences. */
function compare(expected: ExpectedDifference[], found: Map<string, { kind: Kind; columns?: string[] }>) {
  const wanted = new Map(expected.map((difference) => [difference.id, difference]));
  const missed = expected.filter(({ id }) => !found.has(id)).map(({ id }) => id);
  const falseDifferences = [...found.keys()].filter((id) => !wanted.has(id));
  const wrongKind = [...found].filter(([id, { kind }]) => wanted.has(id) && wanted.get(id)!.kind !== kind).map(([id]) => id);
  const columnsRight = expected.every(
    ({ id, kind, columns }) => kind !== 'changed' || [...(found.get(id)?.columns ?? [])].sort().join() === columns.join(),
  );
  return {
    found: found.size,
    exact: missed.length === 0 && falseDifferences.length === 0 && wrongKind.length === 0,
    missed,
    falseDifferences: falseDifferences.slice(0, 20),
    wrongKind,
    columnsRight,
  };
}

interface Measured {
  wallSeconds: number;
  peakMiB: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command` under GNU time: its wall time (from spawn to exit, here) and its peak RSS (%M). */
async function measure(command: string, args: string[], env: NodeJS.ProcessEnv, scratch: string): Promise<Measured> {
  const timeFile = path.join(scratch, 'time.out');
  fs.rmSync(timeFile, { force: true });
  const startedAt = performance.now();
  const child = spawn(GNU_TIME, ['-f', '%e %M', '-o', timeFile, command, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const wallSeconds = (performance.now() - startedAt) / 1000;
  // "Command exited with non-zero status N" comes first when it failed: the figures are on the last line.
  const last = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '';
  const kib = Number(last.split(' ')[1]);
  if (!Number.isFinite(kib)) throw new Error(`GNU time wrote no figures for ${command}: ${last}`);
  return { wallSeconds, peakMiB: kib / 1024, code, stdout, stderr };
}

const firstLines = (text: string) => text.trim().split('\n').slice(-5).join(' | ').slice(0, 500);

/**
 * reladiff's --json output: one JSON line per differing row, `["-", [key, col, ...]]` for a row of the first
 * table (the source) and `["+", ...]` for a row of the second (the copy, standing in for ClickHouse): a key seen
 * only with `-` is missing in ClickHouse, only with `+` extra there, with both changed.
 */
export function parseReladiff(stdout: string): Map<string, { kind: Kind }> {
  const signs = new Map<string, Set<string>>();
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    const parsed = JSON.parse(line) as unknown;
    if (!Array.isArray(parsed) || (parsed[0] !== '-' && parsed[0] !== '+') || !Array.isArray(parsed[1])) {
      throw new Error(`reladiff printed an unexpected line: ${line.slice(0, 200)}`);
    }
    const [sign, row] = parsed as [string, unknown[]];
    const key = String(row[0]);
    signs.set(key, (signs.get(key) ?? new Set()).add(sign));
  }
  return new Map(
    [...signs].map(([key, seen]) => [key, { kind: seen.size === 2 ? 'changed' : seen.has('-') ? 'missing' : 'extra' }]),
  );
}

function postgresUrl(server: ServerSettings['postgres'], database: string): string {
  return `postgresql://${encodeURIComponent(server.user)}:${encodeURIComponent(server.password)}@${server.host}:${server.port}/${database}`;
}

/** Installs reladiff from PyPI into a virtualenv in `dir`; returns its executable and the versions installed. */
async function installReladiff(dir: string, spec: string) {
  const run = (command: string, args: string[]) =>
    new Promise<string>((resolve, reject) => {
      const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.once('error', reject);
      child.once('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`${command} ${args.join(' ')}: ${output}`))));
    });
  await run('python3', ['-m', 'venv', dir]);
  await run(path.join(dir, 'bin/python'), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', spec]);
  const versions = await run(path.join(dir, 'bin/python'), [
    '-c',
    "import importlib.metadata as m; print(', '.join(p + ' ' + m.version(p) for p in ('reladiff', 'sqeleton', 'psycopg2-binary')))",
  ]);
  return { executable: path.join(dir, 'bin/reladiff'), versions: versions.trim() };
}

/** What bench/diff-run.ts runs, compiled: the diff and what it imports from the project (npm packages aside). */
const COMPILED_SOURCES = ['bench/diff-run.ts', 'lib/clickhouse-sql.ts', ...fs.readdirSync(path.join(ROOT, 'lib/row-diff')).map((f) => `lib/row-diff/${f}`)];

/**
 * EchoDB's diff compiled to JavaScript, as a deployment runs it (dist/): bench/diff-run.ts and the modules it
 * imports, transpiled into dist/bench-diff/ (inside the project, so that Node finds node_modules), without tsx's
 * loader in the measured process.
 */
function compiledDiffRun(): string {
  const out = path.join(ROOT, 'dist/bench-diff');
  for (const file of COMPILED_SOURCES.filter((f) => f.endsWith('.ts'))) {
    const { outputText } = ts.transpileModule(fs.readFileSync(path.join(ROOT, file), 'utf8'), {
      fileName: path.basename(file),
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    });
    const target = path.join(out, file.replace(/\.ts$/, '.js'));
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, outputText);
  }
  return path.join(out, 'bench/diff-run.js');
}

/**
 * The source table and its copy, each in its own PostgreSQL database, and the destination in ClickHouse, all
 * filled with the same rows; the destination merged into one part (OPTIMIZE ... FINAL), as a table PeerDB has
 * held for a while is, rather than the ~100 parts of the double's 10,000-row inserts.
 */
async function createTables(servers: ServerSettings, admin: pg.Client, clickhouse: ClickHouseClient, rows: number) {
  await admin.connect();
  let at = performance.now();
  for (const database of [SOURCE_DATABASE, COPY_DATABASE]) {
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${database}`);
    const client = new pg.Client({ ...servers.postgres, database });
    await client.connect();
    try {
      await client.query(`CREATE SCHEMA ${SCHEMA}`);
      await client.query(sql.createSource);
      await client.query(sql.fillSource, [rows]);
      await client.query(`VACUUM ANALYZE ${SCHEMA}.${TABLE}`);
    } finally {
      await client.end();
    }
  }
  const postgresSeconds = (performance.now() - at) / 1000;
  at = performance.now();
  await clickhouse.command({ query: `DROP DATABASE IF EXISTS \`${CLICKHOUSE_DATABASE}\`` });
  await clickhouse.command({ query: `CREATE DATABASE \`${CLICKHOUSE_DATABASE}\`` });
  await clickhouse.command({ query: sql.createDestination });
  await clickhouse.command({ query: sql.fillDestination(rows) });
  await clickhouse.command({ query: `OPTIMIZE TABLE \`${CLICKHOUSE_DATABASE}\`.\`${DESTINATION}\` FINAL` });
  return { postgresSeconds, clickhouseSeconds: (performance.now() - at) / 1000 };
}

/** Fails with the first row that differs between the source (as the double would copy it) and ClickHouse. */
async function checkDestinationEqualsSource(source: pg.Client, clickhouse: ClickHouseClient, rows: number) {
  const step = 200_000; // ids: 100,000 rows a query
  for (let low = 0; low < 2 * rows; low += step) {
    const { rows: expected } = await source.query<unknown[]>({
      text: `SELECT id::text, coalesce(name, ''), amount::text, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS'), active::int
             FROM ${SCHEMA}.${TABLE} t WHERE t.id > $1 AND t.id <= $2 ORDER BY t.id`,
      values: [low, low + step],
      rowMode: 'array',
    });
    const result = await clickhouse.query({
      query: `SELECT toString(id), name, amount, toString(created_at), active
              FROM \`${CLICKHOUSE_DATABASE}\`.\`${DESTINATION}\` FINAL
              WHERE _peerdb_is_deleted = 0 AND id > ${low} AND id <= ${low + step} ORDER BY id`,
      format: 'JSONCompact',
    });
    const { data: actual } = await result.json<unknown[]>();
    for (let i = 0; i < Math.max(expected.length, actual.length); i++) {
      const want = JSON.stringify(expected[i]);
      const have = JSON.stringify(actual[i]);
      if (want !== have) throw new Error(`ClickHouse differs from PostgreSQL: PostgreSQL ${want}, ClickHouse ${have}`);
    }
  }
}

const median = (sample: number[]) => percentile(sample, 50);

function summarize(tool: string, runs: ToolRun[]): ToolResult {
  const ok = runs.filter((run) => run.error === undefined);
  const error = runs.find((run) => run.error !== undefined)?.error;
  const memory = ok.map((run) => run.peakMiB);
  return {
    tool,
    runs,
    medianSeconds: ok.length > 0 ? round(median(ok.map((run) => run.wallSeconds)), 3) : Number.NaN,
    peakMiB: memory.length > 0 ? round(Math.max(...memory), 1) : null,
    found: ok.at(-1)?.found ?? 0,
    exact: ok.length === runs.length && runs.every((run) => run.exact),
    ...(error === undefined ? {} : { error }),
  };
}

/**
 * A `rows`-row table in PostgreSQL, its destination in ClickHouse as the PeerDB double makes it (filled with the
 * same rows, checked equal) and a copy in another PostgreSQL database; then, with no differences and with 10 made
 * on the source, `repetitions` times each: reladiff (source against the copy: it cannot checksum ClickHouse
 * 18.16), EchoDB's diff (bench/diff-run.ts, with tsx and compiled) and the two raw count scans.
 */
export async function measureDiff(servers: ServerSettings, options: DiffBenchOptions): Promise<DiffBenchResult> {
  const { rows, repetitions, reladiffSpec } = options;
  const expectedTen = tenDifferences(rows);
  if (!fs.existsSync(GNU_TIME)) throw new Error(`${GNU_TIME} (GNU time, Debian package 'time') is needed to measure peak memory`);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'echodb-bench-diff-'));
  const admin = new pg.Client(servers.postgres);
  const clickhouse = createClient({
    url: servers.clickhouse.url,
    username: servers.clickhouse.user,
    password: servers.clickhouse.password,
    request_timeout: 600_000,
    log: { level: ClickHouseLogLevel.OFF },
  });
  let source: pg.Client | undefined;
  try {
    console.log(`bench diff: installing ${reladiffSpec} from PyPI into a throwaway virtualenv`);
    const installAt = performance.now();
    const reladiff = await installReladiff(path.join(scratch, 'venv'), reladiffSpec);
    const installSeconds = (performance.now() - installAt) / 1000;
    console.log(`bench diff: ${reladiff.versions}`);

    console.log(`bench diff: a ${rows}-row table in PostgreSQL, a copy in ${COPY_DATABASE}, its destination in ClickHouse`);
    const { postgresSeconds, clickhouseSeconds } = await createTables(servers, admin, clickhouse, rows);
    const checkAt = performance.now();
    source = new pg.Client({ ...servers.postgres, database: SOURCE_DATABASE });
    await source.connect();
    await checkDestinationEqualsSource(source, clickhouse, rows);
    const checkSeconds = (performance.now() - checkAt) / 1000;
    console.log(
      `bench diff: filled in ${round(postgresSeconds, 1)} s (PostgreSQL, both) and ${round(clickhouseSeconds, 1)} s ` +
        `(ClickHouse); every ClickHouse row checked equal to PostgreSQL's in ${round(checkSeconds, 1)} s`,
    );

    const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/' };
    const baselinesMiB: Record<string, number> = {};
    fs.writeFileSync(path.join(scratch, 'empty.mjs'), 'export {};\n');
    fs.writeFileSync(path.join(scratch, 'empty.ts'), 'export {};\n');
    const baselines: [string, string[]][] = [
      ['node, an empty script', [path.join(scratch, 'empty.mjs')]],
      ['node --import tsx, an empty script', ['--import', 'tsx', path.join(scratch, 'empty.ts')]],
      ['node, pg and @clickhouse/client imported', ['--input-type=module', '-e', "await import('pg'); await import('@clickhouse/client');"]],
    ];
    for (const [name, args] of baselines) {
      const runs = [];
      for (let i = 0; i < repetitions; i++) runs.push(await measure(process.execPath, args, env, scratch));
      if (runs.some((run) => run.code !== 0)) throw new Error(`baseline ${name} failed: ${firstLines(runs[0]!.stderr)}`);
      baselinesMiB[name] = round(median(runs.map((run) => run.peakMiB)), 1);
    }

    const compiled = compiledDiffRun();
    const target: DiffRunTarget = {
      postgres: { ...servers.postgres, database: SOURCE_DATABASE },
      clickhouse: servers.clickhouse,
      database: CLICKHOUSE_DATABASE,
      schema: SCHEMA,
      table: TABLE,
      destination: DESTINATION,
    };
    const echodbBuilds: [string, string[]][] = [
      ['EchoDB (tsx)', ['--import', 'tsx', 'bench/diff-run.ts']],
      ['EchoDB (compiled)', [compiled]],
    ];
    const reladiffArgs = [
      postgresUrl(servers.postgres, SOURCE_DATABASE), `${SCHEMA}.${TABLE}`,
      postgresUrl(servers.postgres, COPY_DATABASE), `${SCHEMA}.${TABLE}`,
      '-k', 'id', ...COMPARED_COLUMNS.flatMap((column) => ['-c', column]),
      '-a', 'hashdiff', '-j', '2', '--json',
      // Sorting its output compares the rows' values, and a NULL beside a text raises a TypeError in reladiff 0.6.0
      // whenever the column order (a set's, different each run) puts that column before the one that differs.
      '--skip-sort-results',
    ];

    const runReladiff = async (expected: ExpectedDifference[]): Promise<ToolRun> => {
      // COLUMNS: its console (rich) wraps the JSON lines at 80 characters when stdout is not a terminal.
      const run = await measure(reladiff.executable, reladiffArgs, { ...env, COLUMNS: '100000' }, scratch);
      const figures = { wallSeconds: round(run.wallSeconds, 3), peakMiB: round(run.peakMiB, 1) };
      // reladiff logs some failures (`ERROR - ...`) and still exits 0, its output cut short.
      if (run.code !== 0 || /\bERROR\b/.test(run.stderr)) return { ...figures, ...failed(expected), error: firstLines(run.stderr) };
      try {
        // Its output names no columns: columnsRight does not apply.
        const { found, exact, missed, falseDifferences, wrongKind } = compare(expected, parseReladiff(run.stdout));
        return { ...figures, found, exact, missed, falseDifferences, wrongKind };
      } catch (error) {
        return { ...figures, ...failed(expected), error: String(error) };
      }
    };
    const runEchoDb = async (args: string[], expected: ExpectedDifference[]): Promise<ToolRun> => {
      const run = await measure(process.execPath, args, { ...env, BENCH_DIFF_TARGET: JSON.stringify(target) }, scratch);
      const figures = { wallSeconds: round(run.wallSeconds, 3), peakMiB: round(run.peakMiB, 1) };
      if (run.code !== 0) return { ...figures, ...failed(expected), error: firstLines(run.stderr) };
      let output: DiffRunOutput;
      try {
        output = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as DiffRunOutput;
      } catch {
        return { ...figures, ...failed(expected), error: `no JSON report on stdout: ${firstLines(run.stdout)}` };
      }
      const found = new Map(output.differences.map(({ key, kind, columns }) => [key.id ?? JSON.stringify(key), { kind, columns }]));
      const result = compare(expected, found);
      const total = output.totals.missing + output.totals.extra + output.totals.changed;
      // A report cut at MAX_PRINTED, or totals that disagree with the list, is not exact.
      return { ...figures, ...result, found: Math.max(result.found, total), exact: result.exact && total === found.size, diffSeconds: round(output.diffMs / 1000, 3) };
    };
    const rawScans = async (): Promise<Record<string, number>> => {
      const countPostgres = async () => {
        const startedAt = performance.now();
        await source!.query(`SELECT count(*) FROM ${SCHEMA}.${TABLE}`);
        return (performance.now() - startedAt) / 1000;
      };
      const countClickHouse = async () => {
        const startedAt = performance.now();
        const result = await clickhouse.query({
          query: `SELECT count() AS n FROM \`${CLICKHOUSE_DATABASE}\`.\`${DESTINATION}\` FINAL WHERE _peerdb_is_deleted = 0`,
          format: 'JSONEachRow',
        });
        await result.json();
        return (performance.now() - startedAt) / 1000;
      };
      const postgresCount = await countPostgres();
      const clickhouseCount = await countClickHouse();
      const bothAt = performance.now();
      await Promise.all([countPostgres(), countClickHouse()]);
      return {
        'PostgreSQL count(*)': postgresCount,
        'ClickHouse count() FINAL': clickhouseCount,
        'both counts in parallel': (performance.now() - bothAt) / 1000,
      };
    };

    const cases: DiffCaseResult[] = [];
    for (const [name, expected] of [['no differences', []], ['10 differences', expectedTen]] as const) {
      if (expected.length > 0) {
        for (const difference of expected) await source.query(difference.statement);
        await source.query(`ANALYZE ${SCHEMA}.${TABLE}`);
      }
      console.log(`bench diff: ${name}, ${repetitions} runs of each tool`);
      await rawScans(); // warm both servers' caches once
      const runs = new Map<string, ToolRun[]>();
      const add = (tool: string, run: ToolRun) => runs.set(tool, [...(runs.get(tool) ?? []), run]);
      const scans = new Map<string, number[]>();
      for (let i = 0; i < repetitions; i++) {
        add('reladiff (PostgreSQL to PostgreSQL, -j 2)', await runReladiff([...expected]));
        for (const [build, args] of echodbBuilds) add(build, await runEchoDb(args, [...expected]));
        for (const [scan, seconds] of Object.entries(await rawScans())) scans.set(scan, [...(scans.get(scan) ?? []), round(seconds, 3)]);
      }
      const tools = [...runs].map(([tool, toolRuns]) => summarize(tool, toolRuns));
      const rawScanSeconds = Object.fromEntries(
        [...scans].map(([scan, samples]) => [scan, { medianSeconds: median(samples), samples }]),
      );
      cases.push({
        case: name,
        expected: [...expected],
        tools,
        rawScans: rawScanSeconds,
        ...(expected.length > 0 ? { targets: targets(tools) } : {}),
      });
    }
    return {
      rows,
      repetitions,
      reladiff: {
        spec: reladiffSpec,
        versions: reladiff.versions,
        command: ['reladiff', ...reladiffArgs].join(' ').replace(/:\/\/([^:]+):[^@]+@/g, '://$1:***@'),
        installSeconds: round(installSeconds, 1),
      },
      setupSeconds: { postgres: round(postgresSeconds, 1), clickhouse: round(clickhouseSeconds, 1), check: round(checkSeconds, 1) },
      baselinesMiB,
      cases,
    };
  } finally {
    await source?.end();
    await admin.end().catch(() => undefined);
    await clickhouse.close();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** A run that reported nothing: every expected difference missed. */
function failed(expected: ExpectedDifference[]) {
  return { found: 0, exact: false, missed: expected.map(({ id }) => id), falseDifferences: [], wrongKind: [] };
}

/** EchoDB's targets with 10 differences: at most 2 s, 100 MiB, all 10 exact, faster than reladiff. */
function targets(tools: ToolResult[]): DiffTargets | undefined {
  const echodb = tools.find((tool) => tool.tool === 'EchoDB (compiled)') ?? tools.find((tool) => tool.tool === 'EchoDB (tsx)');
  const reladiff = tools.find((tool) => tool.tool.startsWith('reladiff'));
  if (!echodb || !reladiff) return undefined;
  const result = {
    build: echodb.tool,
    seconds: echodb.medianSeconds,
    peakMiB: echodb.peakMiB,
    withinTwoSeconds: echodb.medianSeconds <= 2,
    within100MiB: echodb.peakMiB !== null && echodb.peakMiB <= 100,
    allTenExact: echodb.exact,
    fasterThanReladiff: echodb.medianSeconds < reladiff.medianSeconds,
  };
  return { ...result, met: result.withinTwoSeconds && result.within100MiB && result.allTenExact && result.fasterThanReladiff };
}
