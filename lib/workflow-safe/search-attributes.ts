import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * EchoDB's Temporal search attributes: with them the Temporal UI finds every workflow of a mirror, a schema or
 * a table. A server must have them registered (the dev server with --search-attribute, a deployment with
 * `temporal operator search-attribute create`). Safe to import from workflow code.
 */
export const searchAttributes = {
  mirror: defineSearchAttributeKey('EchoDbMirror', SearchAttributeType.KEYWORD),
  schema: defineSearchAttributeKey('EchoDbSchema', SearchAttributeType.KEYWORD),
  /**
   * schema.table of the tables a workflow acted on: a mirror workflow, its latest edit's (at most 50); a batch
   * verify, every table it verified. Always within SEARCH_ATTRIBUTE_VALUE_LIMIT.
   */
  tables: defineSearchAttributeKey('EchoDbTables', SearchAttributeType.KEYWORD_LIST),
  /** The outbox event id that started the workflow, or the latest one a mirror workflow applied. */
  eventId: defineSearchAttributeKey('EchoDbEventId', SearchAttributeType.INT),
};

/** A table as EchoDbTables lists it: `schema.table`, unquoted. */
export const tableKeyword = ({ schema, table }: { schema: string; table: string }): string => `${schema}.${table}`;

/** The attributes that tie a workflow to one table of one mirror. */
export function tableSearchAttributes(mirror: string, table: { schema: string; table: string }) {
  return [
    { key: searchAttributes.mirror, value: mirror },
    { key: searchAttributes.schema, value: table.schema },
    { key: searchAttributes.tables, value: [tableKeyword(table)] },
  ];
}

/**
 * The attributes of a workflow that verifies several tables (workflows/verify-tables-workflow.ts): every table in
 * EchoDbTables, which must fit SEARCH_ATTRIBUTE_VALUE_LIMIT (verifyBatches packs them so); the mirror and the schema
 * when all its tables share one.
 */
export function tablesSearchAttributes(tables: readonly { mirror: string; table: { schema: string; table: string } }[], eventId?: string) {
  const only = (values: string[]) => (new Set(values).size === 1 ? values[0] : undefined);
  const mirror = only(tables.map((item) => item.mirror));
  const schema = only(tables.map((item) => item.table.schema));
  return [
    ...(mirror === undefined ? [] : [{ key: searchAttributes.mirror, value: mirror }]),
    ...(schema === undefined ? [] : [{ key: searchAttributes.schema, value: schema }]),
    { key: searchAttributes.tables, value: tables.map((item) => tableKeyword(item.table)) },
    ...eventIdAttribute(eventId),
  ];
}

/**
 * Temporal's limit on one search attribute's value (dynamic config limit.searchAttributesSizeOfValueLimit, 2 KB by
 * default, the dev server's too): the bytes of the value's JSON payload. Past it Temporal refuses the workflow's start
 * or its workflow task ("search attribute EchoDbTables value size 2050 exceeds size limit 2048"), again and again.
 * Temporal also bounds all of a workflow's attributes together (limit.searchAttributesTotalSizeLimit, 40 KB by
 * default), which EchoDB's four, each within this limit, stay far below.
 */
export const SEARCH_ATTRIBUTE_VALUE_LIMIT = 2048;

/** UTF-8 bytes of a string, counted by code point (no TextEncoder needed in the workflow sandbox). */
function utf8Bytes(text: string): number {
  let bytes = 0;
  for (const char of text) {
    const code = char.codePointAt(0)!;
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  }
  return bytes;
}

/**
 * The bytes a keyword adds to a KeywordList's payload: its JSON string (quotes, escapes: a control character takes
 * 6) in UTF-8, and the comma after it. A list of keywords takes 1 + the sum of theirs (brackets, one comma less).
 */
export function keywordBytes(keyword: string): number {
  return utf8Bytes(JSON.stringify(keyword)) + 1;
}

/** The longest leading part of `keywords` whose KeywordList fits SEARCH_ATTRIBUTE_VALUE_LIMIT. */
export function fittingKeywords(keywords: readonly string[]): string[] {
  let bytes = 1;
  const fitting: string[] = [];
  for (const keyword of keywords) {
    bytes += keywordBytes(keyword);
    if (bytes > SEARCH_ATTRIBUTE_VALUE_LIMIT) break;
    fitting.push(keyword);
  }
  return fitting;
}

const cliTypeNames: Record<SearchAttributeType, string> = {
  TEXT: 'Text',
  KEYWORD: 'Keyword',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

/** Name -> type as the Temporal CLI spells them (`--search-attribute Name=Type`). */
export const searchAttributeTypes: Record<string, string> = Object.fromEntries(
  Object.values(searchAttributes).map((key) => [key.name, cliTypeNames[key.type]]),
);

/** The eventId attribute of an outbox event: outbox ids are integers; a rename's halves carry a suffix (`42:from`). */
export function eventIdAttribute(eventId: string | undefined) {
  const numeric = Number(eventId?.split(':')[0]);
  return Number.isSafeInteger(numeric) ? [{ key: searchAttributes.eventId, value: numeric }] : [];
}
