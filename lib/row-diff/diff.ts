/**
 * The row diff: checksums of key-space segments on both sides, bisected where they differ until the segments are
 * small, then the rows of those segments compared by key. Each look is a few statements per side whatever the
 * table's size: one grouped scan for the first level, one per deeper level, and one per batch of small segments.
 *
 * A segment's checksum is its row count and the sum, modulo 2^64, of each row's hash (the first 8 bytes of the MD5
 * of the row's text form, lib/row-diff/normalise.ts): order-free, so ClickHouse's FINAL may return rows in any
 * order. PostgreSQL sums the hashes as signed 64-bit integers exactly (numeric), ClickHouse as UInt64 with
 * wrap-around: both are the same number modulo 2^64. Both sides read live rows only: ClickHouse with FINAL and
 * `_peerdb_is_deleted = 0`.
 */
import { joinedClickHouse, joinedPostgres, KEY_HASH_SPAN, keyHashPosition, type DiffPlan, type Position } from './catalog.js';
import { quoteString } from '../clickhouse-sql.js';
import type { DiffSides } from './sides.js';

export interface DiffOptions {
  /** Rows per first-level segment, on average. */
  segmentRows: number;
  /** The most segments the first level has. */
  maxSegments: number;
  /** A differing segment of at most this many rows (on the larger side) has its rows compared; a larger one is split. */
  leafRows: number;
  /** The most rows one comparison statement reads on each side. */
  batchRows: number;
  /** The most differing rows remembered by key (for re-checks and examples); beyond it they are only counted. */
  trackedRows: number;
  /** PostgreSQL statements the first level runs at the same time, each over a slice of the key range. */
  parallelism: number;
  onProgress?(progress: DiffProgress): void;
}

export const DEFAULT_DIFF_OPTIONS: DiffOptions = {
  segmentRows: 1000,
  maxSegments: 4096,
  leafRows: 4000,
  batchRows: 50_000,
  trackedRows: 2000,
  parallelism: 2,
};

export interface DiffProgress {
  segments: number;
  rowsCovered: number;
}

export type DifferenceKind = 'missing' | 'extra' | 'changed';

/** A differing row: its key's text form (the key columns' forms joined by `|`) and how it differs. */
export interface TrackedRow {
  key: string;
  kind: DifferenceKind;
}

/** A range of positions [from, to), as decimal text (it travels in workflow payloads). */
export interface PositionRange {
  from: string;
  to: string;
}

/** What one look at the table found. */
export interface DiffPass {
  totals: Record<DifferenceKind, number>;
  /** The first differing rows, at most trackedRows. */
  tracked: TrackedRow[];
  /** Differing rows beyond trackedRows: counted, not remembered. */
  untracked: number;
  /** Where the differing rows are: the ranges a re-check reads again. */
  ranges: PositionRange[];
  /** Segments compared, and source rows they hold. */
  segments: number;
  rowsCovered: number;
  /** What the ranges are ranges of: the key, or the hash of the key (catalog.ts, Position). */
  position: Position['kind'];
}

interface Checksum {
  n: bigint;
  /** The sum of the rows' hashes, modulo 2^64. */
  sum: bigint;
}

interface Cell {
  from: bigint;
  to: bigint;
  rows: bigint;
}

const SPLIT_BITS = 5n;
const MAX_RANGES_PER_STATEMENT = 200;

/**
 * An alias for a ClickHouse statement that reads the table's columns. ClickHouse takes a name for the alias of that
 * name before the column (18.16 fails with "Cyclic aliases", current versions quietly read the alias), so these are
 * longer than any PostgreSQL name (63 bytes): no compared column, named like its source column, has one.
 */
const alias = (name: string) => `${name}${'_'.repeat(64)}`;

/** The whole table: a first-level scan, bisection of the differing segments, and their rows compared. */
export async function scanTable(sides: DiffSides, keyPlan: DiffPlan, options: DiffOptions): Promise<DiffPass> {
  let plan = keyPlan;
  const space = await keySpace(sides, plan);
  let { origin, span } = space;
  // Integer keys spread over more than 2^62 (random 64-bit ids) cannot be subtracted from the lowest as bigints.
  if (plan.position.kind === 'key' && span > MAX_KEY_SPAN) {
    plan = { ...plan, position: keyHashPosition(plan.key) };
    [origin, span] = [0n, KEY_HASH_SPAN];
  }
  const wanted = BigInt(Math.min(options.maxSegments, Math.max(1, Math.ceil(space.estimate / options.segmentRows))));
  let shift = 0n;
  while (span > wanted << shift) shift++;
  const pass = emptyPass(plan.position.kind);
  let level = await checksums(sides, plan, origin, shift, { slices: firstLevelSlices(plan, origin, span, shift, options.parallelism) });
  pass.segments += level.segments;
  pass.rowsCovered = Number(level.rows);
  options.onProgress?.({ segments: pass.segments, rowsCovered: pass.rowsCovered });
  const leaves: Cell[] = [];
  for (;;) {
    const split: Cell[] = [];
    for (const cell of level.differing) (cell.rows <= BigInt(options.leafRows) || shift === 0n ? leaves : split).push(cell);
    if (split.length === 0) break;
    shift = shift > SPLIT_BITS ? shift - SPLIT_BITS : 0n;
    level = await checksums(sides, plan, origin, shift, split);
    pass.segments += level.segments;
    options.onProgress?.({ segments: pass.segments, rowsCovered: pass.rowsCovered });
  }
  await compareRows(sides, plan, leaves, options, pass, null);
  return pass;
}

/**
 * Looks again at the rows a pass found different: the ranges that held them are compared anew. A remembered row
 * that still differs stays; one that now matches has converged. Differences beyond the remembered ones are counted
 * afresh in the same ranges.
 */
export async function recheck(sides: DiffSides, keyPlan: DiffPlan, previous: DiffPass, options: DiffOptions): Promise<DiffPass> {
  // A pass recorded before passes named their position (the 0.1.0 development histories) ranged over the plan's own.
  const position = (previous.position as Position['kind'] | undefined) ?? keyPlan.position.kind;
  const plan = position === keyPlan.position.kind ? keyPlan : { ...keyPlan, position: keyHashPosition(keyPlan.key) };
  const pass = emptyPass(position);
  const cells = previous.ranges.map((range) => ({ from: BigInt(range.from), to: BigInt(range.to), rows: 0n }));
  const remembered = new Set(previous.tracked.map((row) => row.key));
  await compareRows(sides, plan, cells, options, pass, previous.untracked > 0 ? null : remembered);
  pass.segments = cells.length;
  return pass;
}

const emptyPass = (position: Position['kind']): DiffPass => ({
  totals: { missing: 0, extra: 0, changed: 0 },
  tracked: [],
  untracked: 0,
  ranges: [],
  segments: 0,
  rowsCovered: 0,
  position,
});

const MAX_KEY_SPAN = 1n << 62n;

/** The first position and the number of positions the keys of both sides span, and the source's size. */
async function keySpace(sides: DiffSides, plan: DiffPlan): Promise<{ origin: bigint; span: bigint; estimate: number }> {
  const [{ rows: [size] }, bounds] = await Promise.all([
    sides.postgres.query<{ estimate: number }>(
      `SELECT CASE WHEN c.reltuples < 0 THEN (SELECT count(*) FROM ${plan.postgresTable}) ELSE c.reltuples END::float8 AS estimate
         FROM pg_class c WHERE c.oid = $1::regclass`,
      [plan.postgresTable],
    ),
    plan.position.kind === 'key' ? keyBounds(sides, plan) : Promise.resolve(null),
  ]);
  const estimate = Math.max(1, Number(size?.estimate ?? 1));
  if (bounds === null) return { origin: 0n, span: KEY_HASH_SPAN, estimate };
  return { ...bounds, estimate };
}

/** The smallest and largest key on either side (ClickHouse's over every stored version: a superset is enough). */
async function keyBounds(sides: DiffSides, plan: DiffPlan): Promise<{ origin: bigint; span: bigint }> {
  const column = plan.position;
  const [{ rows: [source] }, [destination]] = await Promise.all([
    sides.postgres.query<{ low: string | null; high: string | null }>(
      `SELECT min(${column.postgres})::text AS low, max(${column.postgres})::text AS high FROM ${plan.postgresTable}`,
    ),
    sides.clickhouse.rows<{ low: string; high: string; n: string }>(
      `SELECT toString(min(${alias('p')})) AS low, toString(max(${alias('p')})) AS high, toString(count()) AS n
         FROM (SELECT ${column.clickhouse} AS ${alias('p')} FROM ${plan.clickhouseTable})`,
    ),
  ]);
  const values = [source?.low, source?.high, ...(destination && destination.n !== '0' ? [destination.low, destination.high] : [])]
    .filter((value): value is string => value !== null && value !== undefined)
    .map(BigInt);
  if (values.length === 0) return { origin: 0n, span: 1n };
  const low = values.reduce((a, b) => (b < a ? b : a));
  const high = values.reduce((a, b) => (b > a ? b : a));
  return { origin: low, span: high - low + 1n };
}

/**
 * The first level's PostgreSQL statements: the key range cut into `parallelism` slices at segment boundaries, run
 * at the same time (PostgreSQL's own parallel query would sort every row first: it cannot know how few segments
 * there are). A hash position is read whole, once: each slice would hash every key again.
 */
function firstLevelSlices(plan: DiffPlan, origin: bigint, span: bigint, shift: bigint, parallelism: number): (Cell[] | null)[] {
  const segments = (span + (1n << shift) - 1n) >> shift;
  if (plan.position.kind !== 'key' || parallelism <= 1 || segments < 2n) return [null];
  const per = (segments + BigInt(parallelism) - 1n) / BigInt(parallelism);
  const slices: Cell[][] = [];
  for (let first = 0n; first < segments; first += per) {
    const last = first + per < segments ? first + per : segments;
    slices.push([{ from: origin + (first << shift), to: origin + (last << shift), rows: 0n }]);
  }
  return slices;
}

/**
 * Checksums per segment of 2^shift positions from origin, within the given segments, or for the whole table (the
 * first level, whose PostgreSQL statements are `slices`, run at the same time; ClickHouse reads it in one).
 */
async function checksums(
  sides: DiffSides,
  plan: DiffPlan,
  origin: bigint,
  shift: bigint,
  within: { slices: (Cell[] | null)[] } | Cell[],
): Promise<{ differing: Cell[]; segments: number; rows: bigint }> {
  const groups = Array.isArray(within)
    ? chunk(mergeRanges(within), MAX_RANGES_PER_STATEMENT).map((ranges) => ({ postgres: [ranges], clickhouse: ranges }))
    : [{ postgres: within.slices, clickhouse: null }];
  const differing: Cell[] = [];
  let segments = 0;
  let rows = 0n;
  for (const group of groups) {
    const [pgRows, chRows] = await Promise.all([
      Promise.all(group.postgres.map((part) => sides.postgres.query<ChecksumRow>(postgresChecksums(plan, origin, shift, part)))),
      sides.clickhouse.rows<ChecksumRow>(clickhouseChecksums(plan, origin, shift, group.clickhouse)),
    ]);
    const source = byCell(pgRows.flatMap((result) => result.rows));
    const destination = byCell(chRows);
    for (const cell of new Set([...source.keys(), ...destination.keys()])) {
      const a = source.get(cell);
      const b = destination.get(cell);
      segments++;
      rows += a?.n ?? 0n;
      if (a && b && a.n === b.n && a.sum === b.sum) continue;
      const index = BigInt(cell);
      const larger = (a?.n ?? 0n) > (b?.n ?? 0n) ? a!.n : b!.n;
      differing.push({ from: origin + (index << shift), to: origin + ((index + 1n) << shift), rows: larger });
    }
  }
  return { differing, segments, rows };
}

interface ChecksumRow {
  cell: string;
  n: string;
  sum: string;
}

const MOD_64 = 1n << 64n;
const byCell = (rows: ChecksumRow[]) =>
  new Map<string, Checksum>(rows.map((r) => [String(r.cell), { n: BigInt(r.n), sum: ((BigInt(r.sum) % MOD_64) + MOD_64) % MOD_64 }]));

/**
 * PostgreSQL: a range test on the key itself uses its index; a hash position is filtered once computed. The rows
 * are hashed in a subquery that OFFSET 0 keeps whole: its output has no statistics, so the segments are grouped in
 * a hash table (a few hundred assumed, as there are) rather than by sorting every row.
 */
function postgresChecksums(plan: DiffPlan, origin: bigint, shift: bigint, ranges: Cell[] | null): string {
  const { inner, outer } = postgresFilters(plan, ranges);
  return `SELECT c.segment::text AS cell, count(*)::text AS n, sum(c.h)::text AS sum
            FROM (SELECT (p - ${origin}::bigint) >> ${shift} AS segment, h
                    FROM (SELECT ${plan.position.postgres} AS p, ('x' || substr(md5(${joinedPostgres(plan.columns)}), 1, 16))::bit(64)::bigint AS h
                            FROM ${plan.postgresTable} ${inner}) AS r ${outer} OFFSET 0) AS c
           GROUP BY c.segment`;
}

function clickhouseChecksums(plan: DiffPlan, origin: bigint, shift: bigint, ranges: Cell[] | null): string {
  return `SELECT toString(${alias('segment')}) AS cell, toString(count()) AS n, toString(sum(${alias('h')})) AS sum
            FROM (SELECT bitShiftRight(${plan.position.clickhouse} - toInt64('${origin}'), ${shift}) AS ${alias('segment')},
                         halfMD5(${joinedClickHouse(plan.columns)}) AS ${alias('h')}
                    FROM ${plan.clickhouseTable} FINAL WHERE _peerdb_is_deleted = 0 ${clickhouseFilter(plan, ranges)})
           GROUP BY ${alias('segment')}`;
}

/**
 * PostgreSQL's filters for the inner and outer query: a range of the key itself is tested inside (the index serves
 * it); a hash position outside, once computed (OFFSET 0 keeps the planner from computing it again per range).
 */
function postgresFilters(plan: DiffPlan, ranges: Cell[] | null): { inner: string; outer: string } {
  if (ranges === null) return { inner: '', outer: '' };
  const test = (p: string) => ranges.map((r) => `(${p} >= ${r.from}::bigint AND ${p} < ${r.to}::bigint)`).join(' OR ');
  return plan.position.kind === 'key'
    ? { inner: `WHERE ${test(plan.position.postgres)}`, outer: '' }
    : { inner: 'OFFSET 0', outer: `WHERE ${test('p')}` };
}

function clickhouseFilter(plan: DiffPlan, ranges: Cell[] | null): string {
  if (ranges === null) return '';
  const p = plan.position.clickhouse;
  return `AND (${ranges.map((r) => `(${p} >= toInt64('${r.from}') AND ${p} < toInt64('${r.to}'))`).join(' OR ')})`;
}

/**
 * Compares the rows of the given segments by key, in statements of at most batchRows rows (by the segments' sizes),
 * and adds what differs to `pass`. With `only`, differing rows outside it are ignored: a re-check follows the rows
 * it remembers, and a row that began to differ since is lag in flight, not a difference it was asked about.
 */
async function compareRows(
  sides: DiffSides,
  plan: DiffPlan,
  cells: Cell[],
  options: DiffOptions,
  pass: DiffPass,
  only: Set<string> | null,
): Promise<void> {
  for (const batch of batches(cells, options.batchRows)) {
    const ranges = mergeRanges(batch);
    const [source, destination] = await Promise.all([
      sides.postgres.query<{ k: string; h: string }>(postgresRows(plan, ranges)).then((r) => r.rows),
      sides.clickhouse.rows<{ k: string; h: string }>(clickhouseRows(plan, ranges)),
    ]);
    const theirs = new Map(destination.map((row) => [row.k, row.h]));
    let differs = false;
    const note = (key: string, kind: DifferenceKind) => {
      if (only && !only.has(key)) return;
      differs = true;
      pass.totals[kind]++;
      if (pass.tracked.length < options.trackedRows) pass.tracked.push({ key, kind });
      else pass.untracked++;
    };
    for (const row of source) {
      const hash = theirs.get(row.k);
      if (hash === undefined) note(row.k, 'missing');
      else if (hash !== row.h) note(row.k, 'changed');
      theirs.delete(row.k);
    }
    for (const key of theirs.keys()) note(key, 'extra');
    if (differs) pass.ranges.push(...ranges.map((r) => ({ from: String(r.from), to: String(r.to) })));
  }
}

function postgresRows(plan: DiffPlan, ranges: Cell[]): string {
  const { inner, outer } = postgresFilters(plan, ranges);
  return `SELECT k, h FROM (SELECT ${plan.position.postgres} AS p, ${joinedPostgres(plan.key)} AS k, md5(${joinedPostgres(plan.columns)}) AS h
                              FROM ${plan.postgresTable} ${inner}) AS r ${outer}`;
}

function clickhouseRows(plan: DiffPlan, ranges: Cell[]): string {
  return `SELECT ${alias('k')} AS k, ${alias('h')} AS h
            FROM (SELECT ${joinedClickHouse(plan.key)} AS ${alias('k')}, lower(hex(MD5(${joinedClickHouse(plan.columns)}))) AS ${alias('h')}
                    FROM ${plan.clickhouseTable} FINAL WHERE _peerdb_is_deleted = 0 ${clickhouseFilter(plan, ranges)})`;
}

/** The column forms of the given rows on both sides, to name the columns that differ. */
export async function rowForms(
  sides: DiffSides,
  plan: DiffPlan,
  keys: string[],
): Promise<{ postgres: Map<string, string[]>; clickhouse: Map<string, string[]> }> {
  if (keys.length === 0) return { postgres: new Map(), clickhouse: new Map() };
  const pgColumns = plan.columns.map((c, i) => `${c.postgres} AS c${i}`).join(', ');
  const chColumns = plan.columns.map((c, i) => `${c.clickhouse} AS ${alias(`c${i}`)}`).join(', ');
  // A key that is one integer column is its own text form: the rows are then read through the key's index.
  const byKey = plan.position.kind === 'key';
  const [source, destination] = await Promise.all([
    sides.postgres.query<Record<string, string>>(
      `SELECT * FROM (SELECT ${joinedPostgres(plan.key)} AS k, ${pgColumns} FROM ${plan.postgresTable}
                       ${byKey ? `WHERE ${plan.position.postgres} = ANY($2::bigint[])` : ''}) AS r
        WHERE k = ANY($1::text[])`,
      byKey ? [keys, keys] : [keys],
    ),
    sides.clickhouse.rows<Record<string, string>>(
      `SELECT ${['k', ...plan.columns.map((_, i) => `c${i}`)].map((name) => `${alias(name)} AS ${name}`).join(', ')}
         FROM (SELECT ${joinedClickHouse(plan.key)} AS ${alias('k')}, ${chColumns} FROM ${plan.clickhouseTable} FINAL
                WHERE _peerdb_is_deleted = 0 ${byKey ? `AND ${plan.position.clickhouse} IN (${keys.map((k) => `toInt64(${quoteString(k)})`).join(', ')})` : ''})
        WHERE ${alias('k')} IN (${keys.map(quoteString).join(', ')})`,
    ),
  ]);
  const forms = (rows: Record<string, string>[]) => new Map(rows.map((row) => [row.k!, plan.columns.map((_, i) => row[`c${i}`]!)]));
  return { postgres: forms(source.rows), clickhouse: forms(destination) };
}

/** Adjacent segments as one range, in order. */
function mergeRanges(cells: Cell[]): Cell[] {
  const sorted = [...cells].sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
  const merged: Cell[] = [];
  for (const cell of sorted) {
    const last = merged.at(-1);
    if (last && last.to === cell.from) merged[merged.length - 1] = { from: last.from, to: cell.to, rows: last.rows + cell.rows };
    else merged.push({ ...cell });
  }
  return merged;
}

/** Segments in groups of at most `rows` rows (a larger segment alone) and MAX_RANGES_PER_STATEMENT segments. */
function batches(cells: Cell[], rows: number): Cell[][] {
  const groups: Cell[][] = [];
  let current: Cell[] = [];
  let size = 0n;
  for (const cell of cells) {
    if (current.length > 0 && (size + cell.rows > BigInt(rows) || current.length >= MAX_RANGES_PER_STATEMENT)) {
      groups.push(current);
      current = [];
      size = 0n;
    }
    current.push(cell);
    size += cell.rows;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

const chunk = <T>(items: T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
