import { describe, expect, it } from 'vitest';
import { DEFAULT_VERIFY_BATCH_SIZE, packInOrder, verifyBatches } from '../../lib/workflow-safe/batches.js';
import {
  SEARCH_ATTRIBUTE_VALUE_LIMIT,
  fittingKeywords,
  keywordBytes,
  searchAttributes,
  tableKeyword,
  tablesSearchAttributes,
} from '../../lib/workflow-safe/search-attributes.js';

/** The bytes Temporal counts for a KeywordList value: its JSON payload, in UTF-8 (as the SDK encodes it). */
const payloadBytes = (keywords: string[]) => Buffer.byteLength(JSON.stringify(keywords), 'utf8');

const item = (schema: string, table: string, mirror = 'm') => ({ mirror, table: { schema, table } });
const names = (batch: { table: { schema: string; table: string } }[]) => batch.map((i) => tableKeyword(i.table));

/** PostgreSQL's longest names are 63 bytes; these are the ones whose JSON is longest per byte, or shortest. */
const worstNames = {
  'control characters (6 bytes each in JSON)': '\u0001'.repeat(63),
  'double quotes (2 bytes each)': '"'.repeat(63),
  'backslashes (2 bytes each)': '\\'.repeat(63),
  'dots': '.'.repeat(63),
  'two-byte letters': 'é'.repeat(31),
  'four-byte emoji': '😀'.repeat(15),
  'plain, 63 letters': 'x'.repeat(63),
  'one letter': 'x',
};

describe('packInOrder', () => {
  it('keeps the order and cuts at the count', () => {
    expect(packInOrder([1, 2, 3, 4, 5], 2, Infinity, () => 1)).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('cuts where the sizes would pass the bound, and gives an oversized item a run of its own', () => {
    expect(packInOrder([3, 3, 5, 9, 1, 1], 10, 6, (n) => n)).toEqual([[3, 3], [5], [9], [1, 1]]);
  });

  it('makes no run of nothing', () => {
    expect(packInOrder([], 3, 10, () => 1)).toEqual([]);
  });
});

describe('keywordBytes', () => {
  it.each(Object.entries(worstNames))('counts what Temporal counts for a name of %s', (_label, name) => {
    const keywords = [tableKeyword({ schema: name, table: name }), 'public.orders'];
    expect(1 + keywords.reduce((sum, k) => sum + keywordBytes(k), 0)).toBe(payloadBytes(keywords));
  });
});

describe('verifyBatches', () => {
  it('gives VERIFY_BATCH_SIZE tables to a batch when their names are short', () => {
    const items = Array.from({ length: 250 }, (_, i) => item('s', `t${i}`));
    const batches = verifyBatches(items, DEFAULT_VERIFY_BATCH_SIZE);
    expect(batches.map((b) => b.length)).toEqual([100, 100, 50]);
    expect(batches.flat()).toEqual(items);
  });

  it.each(Object.entries(worstNames))(
    'cuts a batch early so that its EchoDbTables fit Temporal\'s 2 KB, with 63-byte names of %s',
    (_label, name) => {
      const items = Array.from({ length: 120 }, (_, i) => item(name, `${name.slice(0, -String(i).length)}${i}`));
      const batches = verifyBatches(items, DEFAULT_VERIFY_BATCH_SIZE);
      expect(batches.flat()).toEqual(items);
      for (const batch of batches) {
        expect(batch.length).toBeLessThanOrEqual(DEFAULT_VERIFY_BATCH_SIZE);
        expect(payloadBytes(names(batch))).toBeLessThanOrEqual(SEARCH_ATTRIBUTE_VALUE_LIMIT);
      }
      // Full: the next table would not have fitted (each batch but the last).
      for (const [i, batch] of batches.slice(0, -1).entries()) {
        const next = batches[i + 1]![0]!;
        const full = batch.length === DEFAULT_VERIFY_BATCH_SIZE || payloadBytes(names([...batch, next])) > SEARCH_ATTRIBUTE_VALUE_LIMIT;
        expect(full).toBe(true);
      }
    },
  );

  it('puts even the longest name PostgreSQL accepts into a batch', () => {
    const longest = '\u0001'.repeat(63);
    const [batch] = verifyBatches([item(longest, longest)], DEFAULT_VERIFY_BATCH_SIZE);
    expect(batch).toHaveLength(1);
    expect(payloadBytes(names(batch!))).toBeLessThanOrEqual(SEARCH_ATTRIBUTE_VALUE_LIMIT);
  });

  it('treats a batch size below one as one', () => {
    expect(verifyBatches([item('s', 'a'), item('s', 'b')], 0)).toHaveLength(2);
  });
});

describe('tablesSearchAttributes', () => {
  it('lists every table, and names the mirror and the schema when the batch has one of each', () => {
    expect(tablesSearchAttributes([item('app', 'a'), item('app', 'b')], '42')).toEqual([
      { key: searchAttributes.mirror, value: 'm' },
      { key: searchAttributes.schema, value: 'app' },
      { key: searchAttributes.tables, value: ['app.a', 'app.b'] },
      { key: searchAttributes.eventId, value: 42 },
    ]);
    expect(tablesSearchAttributes([item('app', 'a', 'm1'), item('web', 'b', 'm2')], 'verify-all:run')).toEqual([
      { key: searchAttributes.tables, value: ['app.a', 'web.b'] },
    ]);
  });
});

describe('fittingKeywords', () => {
  it('keeps the leading keywords that fit one value', () => {
    const long = Array.from({ length: 50 }, (_, i) => `${'"'.repeat(60)}.${'x'.repeat(60)}${i}`);
    const kept = fittingKeywords(long);
    expect(kept).toEqual(long.slice(0, kept.length));
    expect(payloadBytes(kept)).toBeLessThanOrEqual(SEARCH_ATTRIBUTE_VALUE_LIMIT);
    expect(payloadBytes(long.slice(0, kept.length + 1))).toBeGreaterThan(SEARCH_ATTRIBUTE_VALUE_LIMIT);
    expect(fittingKeywords(['public.orders'])).toEqual(['public.orders']);
  });
});
