import { describe, expect, it } from 'vitest';
import { tableFilter } from '../../lib/table-filter.js';

describe('tableFilter (SYNC_SCHEMA and EXCLUDED_TABLES)', () => {
  const filter = tableFilter({ schemas: ['public', 'Sales'], excludedTables: ['temp_*', 'audit.*', 'public.log_??', 'x\\*y'] });
  const reasonFor = (schema: string, table: string) => filter({ schema, table });

  it('watches tables of the listed schemas that no glob matches', () => {
    expect(reasonFor('public', 'orders')).toBeNull();
    expect(reasonFor('Sales', 'Orders')).toBeNull();
  });

  it('skips tables of other schemas, case-sensitively', () => {
    expect(reasonFor('sales', 'orders')).toBe('schema not in SYNC_SCHEMA (public, Sales)');
    expect(reasonFor('audit', 'events')).toBe('schema not in SYNC_SCHEMA (public, Sales)');
  });

  it('matches a glob against the table name in every watched schema', () => {
    expect(reasonFor('public', 'temp_x')).toBe('matches EXCLUDED_TABLES pattern temp_*');
    expect(reasonFor('Sales', 'temp_')).toBe('matches EXCLUDED_TABLES pattern temp_*');
    expect(reasonFor('public', 'my_temp_x')).toBeNull();
    expect(reasonFor('public', 'TEMP_X')).toBeNull();
  });

  it('matches a glob against schema.table', () => {
    expect(reasonFor('public', 'log_01')).toBe('matches EXCLUDED_TABLES pattern public.log_??');
    expect(reasonFor('Sales', 'log_01')).toBeNull();
    expect(reasonFor('public', 'log_001')).toBeNull();
  });

  it('lets * run across dots, slashes and spaces, which table names may contain', () => {
    expect(reasonFor('public', 'temp_a.b/c d')).toBe('matches EXCLUDED_TABLES pattern temp_*');
  });

  it('takes a backslash-escaped * literally', () => {
    expect(reasonFor('public', 'x*y')).toBe('matches EXCLUDED_TABLES pattern x\\*y');
    expect(reasonFor('public', 'xzy')).toBeNull();
  });

  it('skips a watched table PeerDB cannot take, with PeerDB\'s reason', () => {
    expect(reasonFor('public', 'a.b')).toMatch(/PeerDB cannot mirror a table whose schema or table name contains a dot/);
  });
});
