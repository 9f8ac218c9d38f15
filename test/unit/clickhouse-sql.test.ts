import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as clickhouseSql from '../../lib/clickhouse-sql.js';
import { qualifiedTable, quoteIdentifier, quoteString } from '../../lib/clickhouse-sql.js';

describe('quoteIdentifier', () => {
  it('backtick-quotes, escaping backslash and backtick', () => {
    expect(quoteIdentifier('orders')).toBe('`orders`');
    expect(quoteIdentifier('a`b\\c')).toBe('`a\\`b\\\\c`');
  });

  it('refuses a NUL byte, which no ClickHouse name can hold', () => {
    expect(() => quoteIdentifier('a\0b')).toThrow(/NUL/);
  });
});

describe('quoteString', () => {
  it('single-quotes, escaping backslash, quote and control characters', () => {
    expect(quoteString("it's \\ \n\r\t\0\b\f")).toBe("'it\\'s \\\\ \\n\\r\\t\\0\\b\\f'");
  });
});

describe('qualifiedTable', () => {
  it('quotes database and table apart', () => {
    expect(qualifiedTable('db.x', 't`y')).toBe('`db.x`.`t\\`y`');
  });
});

describe('the statements test/clickhouse-current.test.ts runs on ClickHouse 18.16 and current ClickHouse', () => {
  const QUOTING = ['qualifiedTable', 'quoteIdentifier', 'quoteString'];
  const RUN_ABOVE = [
    'countLiveRows',
    'countLiveRowsOfEach',
    'createDatabase',
    'databaseExists',
    'dropTable',
    'existsTable',
    'readinessQuery',
    'renameTable',
  ];

  it('are every statement builder in lib/clickhouse-sql.ts', () => {
    expect(Object.keys(clickhouseSql).filter((name) => !QUOTING.includes(name)).sort()).toEqual(RUN_ABOVE);
  });

  it('are the only statements EchoDB sends to ClickHouse: no statement text is written inline', () => {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
    const inline = /\w*clickhouse\w*\s*\.\s*(?:query|command|exec)\s*\(\s*\{[^}]*?\bquery\s*:\s*[`'"]/gis;
    const found: string[] = [];
    for (const dir of ['activities', 'api', 'cli', 'lib', 'listener', 'workers', 'workflows']) {
      for (const file of fs.readdirSync(path.join(root, dir), { recursive: true, encoding: 'utf8' })) {
        if (!file.endsWith('.ts')) continue;
        const text = fs.readFileSync(path.join(root, dir, file), 'utf8');
        for (const match of text.matchAll(inline)) found.push(`${dir}/${file}: ${match[0].slice(0, 80)}`);
      }
    }
    expect(found, 'build these in lib/clickhouse-sql.ts and run them in test/clickhouse-current.test.ts').toEqual([]);
  });
});
