import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { DESTINATION_NAME_MAX_LENGTH, MIRROR_NAME_MAX_LENGTH, describeCollision, destinationNameLimit, destinationTableFor, droppedTableName, isValidMirrorName, mirrorNameFor, namingRules, peerDbNameProblem, planNames, shortHash, type NamingRules } from '../../lib/naming.js';
import { mirrorWorkflowId, qualifiedName, sourceTableIdentifier, verifyWorkflowId, type TableName } from '../../lib/workflow-safe/workflow-ids.js';

const perSchema: NamingRules = { strategy: 'per-schema', watchedSchemas: ['public'] };
const perTable: NamingRules = { strategy: 'per-table', watchedSchemas: ['public'] };
const perTableTwoSchemas: NamingRules = { strategy: 'per-table', watchedSchemas: ['public', 'sales'] };

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const hashOf = (text: string) => sha256(text).slice(0, 8);

/** How ClickHouse spells a name in its file names: bytes other than A-Z, a-z, 0-9 and _ become %XX. */
const fileNameLength = (name: string) =>
  [...Buffer.from(name, 'utf8')].reduce((length, byte) => length + (/\w/.test(String.fromCharCode(byte)) ? 1 : 3), 0);

/** Every kind of name PostgreSQL accepts and a naive derivation would get wrong. */
const adversarialNames = [
  'orders', 'Orders', 'ORDERS', 'order items', 'order-items', 'order.items', 'it\'s', 'say "hi"', 'a`b', 'back\\slash',
  'new\nline', 'tab\there', 'ünïcødé', 'Ünïcødé', 'заказы', '注文', '😀', '🏳️‍🌈 flags', 'select', 'user', 'table', 'from',
  '1st', '2024_sales', '_leading', '$dollar', 'x$y', '{table}', '{schema}', '%s', '\'; DROP TABLE x; --', '',
  'a'.repeat(63), 'Z'.repeat(63), 'é'.repeat(31), '😀'.repeat(15), `${'b'.repeat(62)}é`.slice(0, 63),
];

/** A deterministic stream of random adversarial names (mulberry32), so that a failure can be replayed. */
function* generatedNames(count: number, seed = 0x5eed): Generator<string> {
  let state = seed;
  const random = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const pieces = [
    'a', 'Z', '0', '9', '_', '$', ' ', '.', '"', '\'', '`', '\\', '-', '\n', '{', '}', 'é', 'ß', 'İ', '😀', '中',
  ];
  for (let index = 0; index < count; index++) {
    let name = '';
    const length = 1 + Math.floor(random() * 40);
    while ([...name].length < length) name += pieces[Math.floor(random() * pieces.length)] ?? 'a';
    while (Buffer.byteLength(name) > 63) name = [...name].slice(0, -1).join('');
    yield name;
  }
}

describe('mirrorNameFor', () => {
  it('names one mirror per schema, echodb_<schema>, under per-schema', () => {
    expect(mirrorNameFor({ schema: 'public', table: 'orders' }, perSchema)).toBe('echodb_public');
    expect(mirrorNameFor({ schema: 'public', table: 'customers' }, perSchema)).toBe('echodb_public');
  });

  it('keeps the original <table>_mirror under per-table with one watched schema', () => {
    expect(mirrorNameFor({ schema: 'public', table: 'orders' }, perTable)).toBe('orders_mirror');
  });

  it('adds the schema under per-table when several schemas are watched, so that equal table names do not meet', () => {
    expect(mirrorNameFor({ schema: 'public', table: 'orders' }, perTableTwoSchemas)).toBe('public_orders_mirror');
    expect(mirrorNameFor({ schema: 'sales', table: 'orders' }, perTableTwoSchemas)).toBe('sales_orders_mirror');
    expect(mirrorNameFor({ schema: 'public', table: 'orders' }, { ...perTable, watchedSchemas: ['public', 'public'] }))
      .toBe('orders_mirror');
  });

  it('follows MIRROR_NAME_TEMPLATE when it is set, whatever the strategy', () => {
    const table = { schema: 'public', table: 'orders' };
    expect(mirrorNameFor(table, { ...perTable, nameTemplate: 'cdc_{schema}_{table}' })).toBe('cdc_public_orders');
    expect(mirrorNameFor(table, { ...perSchema, nameTemplate: '{schema}_cdc' })).toBe('public_cdc');
  });

  it('leaves a name that is already valid as it is', () => {
    for (const table of ['orders', 'order_items', '_staging', 'v2_events', 'x'.repeat(42)]) {
      expect(mirrorNameFor({ schema: 'public', table }, perTable)).toBe(`${table}_mirror`);
    }
    expect(mirrorNameFor({ schema: 'public', table: 'x' }, { ...perSchema, nameTemplate: `${'m'.repeat(47)}_{table}` }))
      .toBe(`${'m'.repeat(47)}_x`);
  });

  it('lowercases and replaces other characters, adding a hash of the exact text whenever that changed it', () => {
    expect(mirrorNameFor({ schema: 'public', table: 'Orders' }, perTable))
      .toBe(`orders_mirror_${hashOf('Orders_mirror')}`);
    expect(mirrorNameFor({ schema: 'public', table: 'order items' }, perTable))
      .toBe(`order_items_mirror_${hashOf('order items_mirror')}`);
    expect(mirrorNameFor({ schema: 'Sales Team', table: 'x' }, perSchema))
      .toBe(`echodb_sales_team_${hashOf('echodb_Sales Team')}`);
  });

  it('gives Orders and orders different mirrors', () => {
    const lower = mirrorNameFor({ schema: 'public', table: 'orders' }, perTable);
    const upper = mirrorNameFor({ schema: 'public', table: 'Orders' }, perTable);
    expect(lower).toBe('orders_mirror');
    expect(upper).not.toBe(lower);
    expect(mirrorNameFor({ schema: 'Public', table: 'x' }, perSchema))
      .not.toBe(mirrorNameFor({ schema: 'public', table: 'x' }, perSchema));
  });

  it('puts an underscore before a leading digit, with a hash, since _1st_mirror may be a table of its own', () => {
    expect(mirrorNameFor({ schema: 'public', table: '1st' }, perTable)).toBe(`_1st_mirror_${hashOf('1st_mirror')}`);
    expect(mirrorNameFor({ schema: 'public', table: '_1st' }, perTable)).toBe('_1st_mirror');
  });

  it('shortens a long name to 49 characters, so that peerflow_slot_<mirror> fits in 63 bytes', () => {
    const table = 'a'.repeat(63);
    const name = mirrorNameFor({ schema: 'public', table }, perTable);
    expect(MIRROR_NAME_MAX_LENGTH).toBe(49);
    expect(name).toBe(`${'a'.repeat(40)}_${hashOf(`${table}_mirror`)}`);
    expect(`peerflow_slot_${name}`.length).toBe(63);
    expect(mirrorNameFor({ schema: 'public', table: 'a'.repeat(62) }, perTable))
      .not.toBe(mirrorNameFor({ schema: 'public', table: 'a'.repeat(61) }, perTable));
  });

  it('makes a valid name of every name PostgreSQL accepts', () => {
    for (const table of [...adversarialNames, ...generatedNames(2_000)]) {
      for (const rules of [perSchema, perTable, perTableTwoSchemas]) {
        const name = mirrorNameFor({ schema: table, table }, rules);
        expect(isValidMirrorName(name), `${JSON.stringify(table)} gave ${name}`).toBe(true);
        expect(name.length).toBeLessThanOrEqual(49);
      }
    }
  });

  it('gives different names to different tables', () => {
    const tables = [...new Set([...adversarialNames, ...generatedNames(5_000, 42)])];
    const names = new Set(tables.map((table) => mirrorNameFor({ schema: 'public', table }, perTable)));
    expect(names.size).toBe(tables.length);
  });

  it('gives the same name for the same table every time', () => {
    for (const table of [...adversarialNames, ...generatedNames(200, 7)]) {
      const first = mirrorNameFor({ schema: 'public', table }, perTableTwoSchemas);
      expect(mirrorNameFor({ schema: 'public', table }, { ...perTableTwoSchemas })).toBe(first);
    }
    expect(mirrorNameFor({ schema: 'public', table: 'Orders' }, perTable)).toBe('orders_mirror_2a31102e');
  });

  it('substitutes the template once, so that a name holding "{table}" stays literal', () => {
    expect(mirrorNameFor({ schema: '{table}', table: 'x' }, perSchema))
      .toBe(`echodb__table__${hashOf('echodb_{table}')}`);
  });

  it('is given its rules by the config', () => {
    const config = loadConfig({ env: { MIRROR_STRATEGY: 'per-table', SYNC_SCHEMA: 'public,sales' }, envFile: false });
    expect(namingRules(config))
      .toEqual({ strategy: 'per-table', nameTemplate: undefined, watchedSchemas: ['public', 'sales'] });
    expect(mirrorNameFor({ schema: 'sales', table: 'orders' }, namingRules(config))).toBe('sales_orders_mirror');
  });
});

describe('isValidMirrorName', () => {
  it('accepts what PeerDB accepts, up to 49 characters', () => {
    expect(['a', '_', 'echodb_public', '_1', 'a'.repeat(49)].filter((name) => !isValidMirrorName(name))).toEqual([]);
    expect(['', '1a', 'A', 'a-b', 'a b', 'é', 'a'.repeat(50)].filter(isValidMirrorName)).toEqual([]);
  });
});

describe('shortHash', () => {
  it('is the first 8 hex digits of the SHA-256 of the UTF-8 text', () => {
    const boundaries = [0, 1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 1_000].map((length) => 'x'.repeat(length));
    for (const text of [...boundaries, ...adversarialNames, ...generatedNames(300, 3), '\ud800 lone surrogate']) {
      expect(shortHash(text)).toBe(hashOf(text));
    }
  });
});

describe('destinationTableFor', () => {
  const orders = { schema: 'public', table: 'orders' };

  it('is the table name by default', () => {
    expect(destinationTableFor(orders)).toBe('orders');
    expect(destinationTableFor(orders, '{table}')).toBe('orders');
  });

  it('follows DESTINATION_TABLE_TEMPLATE', () => {
    expect(destinationTableFor(orders, '{schema}_{table}')).toBe('public_orders');
    expect(destinationTableFor(orders, 'pg_{table}')).toBe('pg_orders');
    expect(destinationTableFor(orders, '{schema}.{table}')).toBe('public.orders');
  });

  it('keeps every name exactly as PostgreSQL has it', () => {
    for (const table of [...adversarialNames.filter((name) => name !== ''), ...generatedNames(500, 11)]) {
      if (fileNameLength(table) > DESTINATION_NAME_MAX_LENGTH) continue;
      expect(destinationTableFor({ schema: 'Sales', table })).toBe(table);
      expect(destinationTableFor({ schema: 'Sales', table }, '{schema}/{table}')).toBe(`Sales/${table}`);
    }
  });

  it('shortens, with a hash, a name too long for ClickHouse\'s file names', () => {
    const table = { schema: '😀'.repeat(15), table: 'é'.repeat(31) };
    const wanted = `${table.schema}_${table.table}`;
    const name = destinationTableFor(table, '{schema}_{table}');
    expect(name).toBe(`${table.schema}_é_${hashOf(wanted)}`);
    expect(fileNameLength(name)).toBeLessThanOrEqual(200);

    const ascii = { schema: 'a'.repeat(63), table: 'b'.repeat(63) };
    expect(destinationTableFor(ascii, '{schema}_{table}_{schema}_{table}')).toHaveLength(200);
    const fits = `${'c'.repeat(63)}_${'d'.repeat(63)}`;
    expect(destinationTableFor({ schema: 'c'.repeat(63), table: 'd'.repeat(63) }, '{schema}_{table}')).toBe(fits);
  });

  it('stays within ClickHouse\'s file-name limit for any name', () => {
    for (const table of generatedNames(1_000, 5)) {
      const name = destinationTableFor({ schema: table, table }, '{schema}_{table}_{schema}');
      expect(fileNameLength(name)).toBeLessThanOrEqual(DESTINATION_NAME_MAX_LENGTH);
    }
  });
});

describe('destinationNameLimit', () => {
  it('leaves 200 in a short database, and less as the database name grows in file names', () => {
    expect(destinationNameLimit('echo')).toBe(DESTINATION_NAME_MAX_LENGTH);
    expect(destinationNameLimit('default')).toBe(197);
    expect(destinationNameLimit('echodb_current_0123456789ab')).toBe(204 - 27);
    // Every character other than A-Z, a-z, 0-9 and _ takes three in ClickHouse's file names.
    expect(destinationNameLimit('анализ')).toBe(204 - 6 * 2 * 3);
    expect(destinationNameLimit('x'.repeat(250))).toBe(40);
  });

  it('bounds destination and rename-aside names', () => {
    const long = { schema: 'public', table: 'x'.repeat(300) };
    expect(fileNameLength(destinationTableFor(long, '{table}', 150))).toBeLessThanOrEqual(150);
    expect(droppedTableName('y'.repeat(300), new Date(0), 150)).toHaveLength(150);
  });
});

describe('droppedTableName', () => {
  const at = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678));

  it('appends _dropped_ and the UTC time to the second', () => {
    expect(droppedTableName('orders', at)).toBe('orders_dropped_20260102030405');
    expect(droppedTableName('Order Items.v2', at)).toBe('Order Items.v2_dropped_20260102030405');
  });

  it('shortens a long destination, with a hash, to stay within the file-name limit', () => {
    const destination = 'é'.repeat(60);
    const name = droppedTableName(destination, at);
    expect(name).toMatch(new RegExp(`^é+_${hashOf(destination)}_dropped_20260102030405$`));
    expect(fileNameLength(name)).toBeLessThanOrEqual(200);
    expect(droppedTableName('x'.repeat(200), at)).toHaveLength(200);
  });

  it('refuses an invalid date', () => {
    expect(() => droppedTableName('orders', new Date(Number.NaN))).toThrow(RangeError);
  });
});

describe('sourceTableIdentifier', () => {
  it('is schema.table, unquoted, as PeerDB splits it and quotes the parts itself', () => {
    expect(sourceTableIdentifier({ schema: 'public', table: 'orders' })).toBe('public.orders');
    expect(sourceTableIdentifier({ schema: 'Sales', table: 'Order "Items"' })).toBe('Sales.Order "Items"');
  });

  it('goes with a reason why PeerDB cannot take a name holding a dot', () => {
    expect(peerDbNameProblem({ schema: 'public', table: 'Order "Items"' })).toBeUndefined();
    expect(peerDbNameProblem({ schema: 'public', table: 'order.items' })).toMatch(/dot/);
    expect(peerDbNameProblem({ schema: 'sales.eu', table: 'orders' })).toMatch(/dot/);
  });
});

describe('qualifiedName', () => {
  it('is schema.table for simple lower-case names', () => {
    expect(qualifiedName({ schema: 'public', table: 'orders' })).toBe('public.orders');
    expect(qualifiedName({ schema: '_s', table: 'x$1' })).toBe('_s.x$1');
  });

  it('quotes both parts, doubling double quotes, when either is not simple', () => {
    expect(qualifiedName({ schema: 'sch.ema', table: 'Ta"ble' })).toBe('"sch.ema"."Ta""ble"');
    expect(qualifiedName({ schema: 'public', table: 'Orders' })).toBe('"public"."Orders"');
    expect(qualifiedName({ schema: 'public', table: '1st' })).toBe('"public"."1st"');
  });

  it('tells apart tables that plain concatenation would not', () => {
    expect(qualifiedName({ schema: 'a.b', table: 'c' })).not.toBe(qualifiedName({ schema: 'a', table: 'b.c' }));
  });
});

describe('workflow IDs', () => {
  it('names the mirror workflow after its mirror, apart from PeerDB\'s <mirror>-peerflow', () => {
    expect(mirrorWorkflowId('echodb_public')).toBe('echodb-mirror:echodb_public');
  });

  it('names a verify workflow after its mirror, event and table', () => {
    expect(verifyWorkflowId('echodb_public', { schema: 'public', table: 'orders' }, '42'))
      .toBe('echodb-verify:echodb_public:42:public.orders');
    expect(verifyWorkflowId('echodb_public', { schema: 'public', table: 'Or"ders' }, '42'))
      .toBe('echodb-verify:echodb_public:42:"public"."Or""ders"');
  });
});

describe('planNames', () => {
  const table = (schema: string, name: string): TableName => ({ schema, table: name });

  it('gives every table its mirror and destination', () => {
    const plan = planNames([table('public', 'orders'), table('public', 'Users')], perSchema);
    expect(plan).toEqual({
      entries: [
        { table: table('public', 'orders'), mirror: 'echodb_public', destination: 'orders' },
        { table: table('public', 'Users'), mirror: 'echodb_public', destination: 'Users' },
      ],
      collisions: [],
      unsupported: [],
    });
  });

  it('reports two schemas\' tables of one name landing in one ClickHouse table', () => {
    const tables = [table('public', 'orders'), table('sales', 'orders'), table('sales', 'customers')];
    const rules = { ...perSchema, watchedSchemas: ['public', 'sales'] };
    const plan = planNames(tables, rules, '{table}');
    expect(plan.collisions).toEqual([
      { kind: 'destination', name: 'orders', tables: [table('public', 'orders'), table('sales', 'orders')] },
    ]);
    expect(describeCollision(plan.collisions[0]!)).toBe(
      'ClickHouse table "orders" would receive 2 source tables (public.orders, sales.orders); '
        + 'change DESTINATION_TABLE_TEMPLATE or exclude all but one of them',
    );
    expect(planNames(tables, rules, '{schema}_{table}').collisions).toEqual([]);
  });

  it('reports, under per-table, two tables that would share a mirror', () => {
    const rules = { ...perTableTwoSchemas, nameTemplate: 'cdc_{table}' };
    const plan = planNames([table('public', 'orders'), table('sales', 'orders')], rules, '{schema}_{table}');
    expect(plan.collisions).toEqual([
      { kind: 'mirror', name: 'cdc_orders', tables: [table('public', 'orders'), table('sales', 'orders')] },
    ]);
    expect(describeCollision(plan.collisions[0]!)).toBe(
      'mirror "cdc_orders" would be shared by 2 source tables that must not share one (public.orders, sales.orders); '
        + 'change MIRROR_NAME_TEMPLATE or exclude all but one of them',
    );
  });

  it('reports the names that meet through the default per-table template', () => {
    const plan = planNames([table('a_b', 'c'), table('a', 'b_c')], perTableTwoSchemas, '{schema}.{table}');
    expect(plan.collisions)
      .toEqual([{ kind: 'mirror', name: 'a_b_c_mirror', tables: [table('a_b', 'c'), table('a', 'b_c')] }]);
  });

  it('reports, under per-schema, two schemas that would share a mirror, but not the tables of one schema', () => {
    const rules = { ...perSchema, nameTemplate: 'cdc_{table}' };
    const tables = [table('public', 'orders'), table('sales', 'orders'), table('sales', 'items')];
    expect(planNames(tables, rules, '{schema}_{table}').collisions).toEqual([
      { kind: 'mirror', name: 'cdc_orders', tables: [table('public', 'orders'), table('sales', 'orders')] },
    ]);
    expect(planNames([table('sales', 'orders'), table('sales', 'items')], perSchema).collisions).toEqual([]);
  });

  it('does not count a table listed twice as a collision', () => {
    expect(planNames([table('public', 'orders'), table('public', 'orders')], perTable).collisions).toEqual([]);
  });

  it('lists the tables PeerDB cannot take', () => {
    const plan = planNames([table('public', 'order.items'), table('public', 'orders')], perTable);
    expect(plan.unsupported.map(({ table: unsupported }) => unsupported)).toEqual([table('public', 'order.items')]);
    expect(plan.unsupported[0]?.problem).toMatch(/dot/);
    expect(plan.entries).toHaveLength(2);
  });

  it('describes a collision on one line whatever the names hold', () => {
    const tables = [table('public', 'new\nline'), table('sales', 'new\nline')];
    const [collision] = planNames(tables, perSchema, '{table}').collisions;
    expect(collision).toBeDefined();
    const line = describeCollision(collision!);
    expect(line).not.toMatch(/[\n\r]/);
    expect(line).toContain('"public"."new\\u000aline"');
  });

  it('finds no collision among many adversarial tables with schema-qualified names', () => {
    const tables = [...new Set([...adversarialNames.filter((name) => name !== ''), ...generatedNames(1_000, 9)])]
      .flatMap((name) => [table('public', name), table('Public', name)]);
    const plan = planNames(tables, { ...perTableTwoSchemas, nameTemplate: '{schema}_{table}' }, '{schema}/{table}');
    expect(plan.collisions.map(describeCollision)).toEqual([]);
  });
});
