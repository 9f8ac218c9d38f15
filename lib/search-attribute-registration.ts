import type { ConnectionLike } from '@temporalio/client';
import proto, { type temporal } from '@temporalio/proto';
import { searchAttributes, searchAttributeTypes } from './workflow-safe/search-attributes.js';

/**
 * EchoDB's search attributes in a Temporal namespace: found, registered, or named with the commands that register
 * them where EchoDB may not (a cloud namespace without that permission, say). Node-only: the operator service.
 */

// A CommonJS module: its namespaces come through the default export.
const { IndexedValueType } = proto.temporal.api.enums.v1;
const indexedTypes: Record<string, temporal.api.enums.v1.IndexedValueType> = {
  TEXT: IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
  KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
  DOUBLE: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
  BOOL: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
  DATETIME: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
  KEYWORD_LIST: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
};
const wanted = Object.values(searchAttributes).map((key) => ({ name: key.name, type: indexedTypes[key.type]! }));

export interface SearchAttributeCheck {
  /** EchoDB's attributes the namespace does not have. */
  missing: string[];
  /** Attributes of EchoDB's names registered with another type: `Name (Type, needs Type)`. */
  mistyped: string[];
}

const typeName = (type: temporal.api.enums.v1.IndexedValueType | null | undefined) =>
  IndexedValueType[type ?? 0]?.replace('INDEXED_VALUE_TYPE_', '') ?? String(type);

export async function checkSearchAttributes(connection: ConnectionLike, namespace: string): Promise<SearchAttributeCheck> {
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  const found = customAttributes ?? {};
  return {
    missing: wanted.filter(({ name }) => !(name in found)).map(({ name }) => name),
    mistyped: wanted
      .filter(({ name, type }) => name in found && found[name] !== type)
      .map(({ name, type }) => `${name} (${typeName(found[name])}, needs ${typeName(type)})`),
  };
}

/** The temporal CLI commands that register these attributes. */
export function registrationCommands(namespace: string, names: string[]): string[] {
  return names.map(
    (name) => `temporal operator search-attribute create --namespace ${namespace} --name ${name} --type ${searchAttributeTypes[name]}`,
  );
}

/** What is wrong with the namespace's attributes, and what to do, in one message; null when nothing is. */
export function describeSearchAttributeProblems(namespace: string, check: SearchAttributeCheck): string | null {
  const problems = [
    ...(check.missing.length > 0 ? [`lacks EchoDB's search attributes ${check.missing.join(', ')}`] : []),
    ...(check.mistyped.length > 0 ? [`has search attributes of another type: ${check.mistyped.join(', ')}`] : []),
  ];
  if (problems.length === 0) return null;
  const fix = check.missing.length > 0
    ? `: run echodb setup, or:\n  ${registrationCommands(namespace, check.missing).join('\n  ')}`
    : '';
  return `Temporal namespace ${namespace} ${problems.join(' and ')}${fix}`;
}

/**
 * Registers the attributes the namespace lacks (idempotent: none when all are there). Returns the names it
 * registered. A server that refuses gets an error that names the commands to run with the needed permission.
 */
export async function registerSearchAttributes(connection: ConnectionLike, namespace: string): Promise<string[]> {
  const check = await checkSearchAttributes(connection, namespace);
  if (check.mistyped.length > 0) throw new Error(describeSearchAttributeProblems(namespace, { missing: [], mistyped: check.mistyped })!);
  if (check.missing.length === 0) return [];
  try {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(wanted.filter(({ name }) => check.missing.includes(name)).map(({ name, type }) => [name, type])),
    });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `Temporal refused to register EchoDB's search attributes in namespace ${namespace} (${reason}); ` +
        `run these with a role that may, then run echodb setup again:\n  ${registrationCommands(namespace, check.missing).join('\n  ')}`,
      { cause: error },
    );
  }
  return check.missing;
}
