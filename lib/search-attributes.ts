/**
 * EchoDB's Temporal search attributes: with them the Temporal UI finds every workflow of a mirror, a schema or
 * a table. A server must have them registered (the dev server with --search-attribute, a deployment with
 * `temporal operator search-attribute create`).
 */
export const searchAttributeTypes = {
  EchoDbMirror: 'Keyword',
  EchoDbSchema: 'Keyword',
  EchoDbTables: 'KeywordList',
  EchoDbEventId: 'Int',
} as const;
