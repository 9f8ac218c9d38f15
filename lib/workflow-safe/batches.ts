/**
 * How tables are cut into batches that are verified together (workflows/verify-tables-workflow.ts) and counted in
 * one statement per database (activities/verify-activities.ts). Pure and deterministic: workflow code packs with it.
 */
import { SEARCH_ATTRIBUTE_VALUE_LIMIT, keywordBytes, tableKeyword } from './search-attributes.js';

/** VERIFY_BATCH_SIZE's default: tables verified by one workflow, counted in one statement per database. */
export const DEFAULT_VERIFY_BATCH_SIZE = 100;
/** VERIFY_BATCH_SIZE's bound. The 2 KB of the tables' search attribute cut batches far below it anyway. */
export const MAX_VERIFY_BATCH_SIZE = 1000;

/**
 * Splits `items`, in their order, into runs of at most `maxItems` whose sizes add up to at most `maxSize`. An item
 * larger than `maxSize` makes a run of its own.
 */
export function packInOrder<T>(items: readonly T[], maxItems: number, maxSize: number, sizeOf: (item: T) => number): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let size = 0;
  for (const item of items) {
    const itemSize = sizeOf(item);
    if (run.length > 0 && (run.length >= maxItems || size + itemSize > maxSize)) {
      runs.push(run);
      [run, size] = [[], 0];
    }
    run.push(item);
    size += itemSize;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/**
 * Batches of tables to verify together, in their order: at most `maxTables` each, and cut earlier where their names
 * would not fit one EchoDbTables value (SEARCH_ATTRIBUTE_VALUE_LIMIT). Any name PostgreSQL accepts fits on its own:
 * two 63-byte names of control characters, each escaped in 6 bytes, take 761.
 */
export function verifyBatches<T extends { table: { schema: string; table: string } }>(items: readonly T[], maxTables: number): T[][] {
  // A KeywordList's payload is 1 byte (the brackets, less the last comma) plus each keyword's bytes and comma.
  return packInOrder(items, Math.max(1, maxTables), SEARCH_ATTRIBUTE_VALUE_LIMIT - 1, (item) => keywordBytes(tableKeyword(item.table)));
}
