/**
 * EchoDB's row diff between a PostgreSQL table and its PeerDB copy in ClickHouse. catalog.ts decides what is
 * compared, normalise.ts how each value is written on both sides, diff.ts finds the differing rows; this module
 * names the columns that differ and builds the report.
 */
import { planDiff, type ColumnDrift, type DiffPlan, type NoRowDiff } from './catalog.js';
import { DEFAULT_DIFF_OPTIONS, rowForms, scanTable, type DiffOptions, type DiffPass, type DifferenceKind } from './diff.js';
import type { ExcludedColumn } from './normalise.js';
import type { DiffSides, DiffTarget } from './sides.js';

export { planDiff, type DiffPlan, type NoRowDiff, type ColumnDrift } from './catalog.js';
export { DEFAULT_DIFF_OPTIONS, recheck, scanTable, type DiffOptions, type DiffPass, type DiffProgress, type DifferenceKind } from './diff.js';
export type { ExcludedColumn } from './normalise.js';
export type { ClickHouseSide, DiffSides, DiffTarget, PostgresSide } from './sides.js';

/** The longest value an example shows; a longer one is cut and marked. */
const EXAMPLE_VALUE_CHARS = 200;

/** One differing row, as reported: its key, how it differs, and for a changed row the columns and their values. */
export interface Difference {
  /** Each key column's value in its text form. */
  key: Record<string, string>;
  kind: DifferenceKind;
  /** The columns whose values differ (a changed row), or none. */
  columns: string[];
  /** The differing columns' text forms on each side (null: the row is not on that side). */
  values?: Record<string, { postgres: string | null; clickhouse: string | null }>;
}

export const isNoRowDiff = (plan: DiffPlan | NoRowDiff): plan is NoRowDiff => 'fallback' in plan;

/** A form without its `<bytes>:` prefix, for people to read. */
function readable(form: string | undefined): string | null {
  if (form === undefined) return null;
  const prefixed = /^(\d+):/.exec(form);
  const value = prefixed && Buffer.byteLength(form.slice(prefixed[0].length)) === Number(prefixed[1]) ? form.slice(prefixed[0].length) : form;
  return value.length > EXAMPLE_VALUE_CHARS ? `${value.slice(0, EXAMPLE_VALUE_CHARS)}…` : value;
}

/** The first `limit` differing rows of a pass, with the columns that differ. */
export async function describeDifferences(sides: DiffSides, plan: DiffPlan, pass: DiffPass, limit: number): Promise<Difference[]> {
  const rows = pass.tracked.slice(0, limit);
  const forms = await rowForms(sides, plan, rows.map((row) => row.key));
  const keyIndexes = plan.key.map((k) => plan.columns.findIndex((c) => c.name === k.name));
  return rows.map(({ key, kind }) => {
    const source = forms.postgres.get(key);
    const destination = forms.clickhouse.get(key);
    const either = source ?? destination;
    const differing = plan.columns
      .map((column, i) => ({ column, i }))
      .filter(({ i }) => source === undefined || destination === undefined || source[i] !== destination[i]);
    return {
      key: Object.fromEntries(plan.key.map((k, j) => [k.name, readable(either?.[keyIndexes[j]!]) ?? key])),
      kind,
      columns: kind === 'changed' ? differing.map(({ column }) => column.name) : [],
      ...(kind === 'changed' && {
        values: Object.fromEntries(
          differing.map(({ column, i }) => [column.name, { postgres: readable(source?.[i]), clickhouse: readable(destination?.[i]) }]),
        ),
      }),
    };
  });
}

/** One look at a table: what differs right now, without re-checks (the diff workflow adds those). */
export interface DiffReport {
  totals: Record<DifferenceKind, number>;
  differences: Difference[];
  /** Differences beyond those remembered (DiffOptions.trackedRows): counted only. */
  untracked: number;
  excluded: ExcludedColumn[];
  drift: ColumnDrift;
  segments: number;
  rowsCovered: number;
}

/** Diffs one table once; rejects with the reason when it has no primary key the diff can use. */
export async function diffTable(
  sides: DiffSides,
  target: DiffTarget,
  options: Partial<DiffOptions> & { examples?: number } = {},
): Promise<DiffReport> {
  const settings = { ...DEFAULT_DIFF_OPTIONS, ...options };
  const plan = await planDiff(sides.postgres, sides.clickhouse, sides.database, target);
  if (isNoRowDiff(plan)) throw new Error(`cannot diff ${target.schema}.${target.table} row by row: ${plan.fallback}`);
  const pass = await scanTable(sides, plan, settings);
  return {
    totals: pass.totals,
    differences: await describeDifferences(sides, plan, pass, options.examples ?? settings.trackedRows),
    untracked: pass.untracked,
    excluded: plan.excluded,
    drift: plan.drift,
    segments: pass.segments,
    rowsCovered: pass.rowsCovered,
  };
}
