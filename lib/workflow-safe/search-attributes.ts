import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * EchoDB's Temporal search attributes: with them the Temporal UI finds every workflow of a mirror, a schema or
 * a table. A server must have them registered (the dev server with --search-attribute, a deployment with
 * `temporal operator search-attribute create`). Safe to import from workflow code.
 */
export const searchAttributes = {
  mirror: defineSearchAttributeKey('EchoDbMirror', SearchAttributeType.KEYWORD),
  schema: defineSearchAttributeKey('EchoDbSchema', SearchAttributeType.KEYWORD),
  /** schema.table of the tables a workflow acted on (a mirror workflow: its latest edit's, at most 50). */
  tables: defineSearchAttributeKey('EchoDbTables', SearchAttributeType.KEYWORD_LIST),
  /** The outbox event id that started the workflow, or the latest one a mirror workflow applied. */
  eventId: defineSearchAttributeKey('EchoDbEventId', SearchAttributeType.INT),
};

/** The attributes that tie a workflow to one table of one mirror. */
export function tableSearchAttributes(mirror: string, table: { schema: string; table: string }) {
  return [
    { key: searchAttributes.mirror, value: mirror },
    { key: searchAttributes.schema, value: table.schema },
    { key: searchAttributes.tables, value: [`${table.schema}.${table.table}`] },
  ];
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
