import wildcardMatch from 'wildcard-match';
import type { Config } from './config.js';
import { peerDbNameProblem } from './naming.js';
import type { TableRef } from '../workflows/model.js';

/** Why a table is not mirrored, or null when it is watched. */
export type TableFilter = (table: TableRef) => string | null;

/**
 * SYNC_SCHEMA and EXCLUDED_TABLES as one decision, shared by the listener and reconcile. An EXCLUDED_TABLES glob
 * (`*` any run of characters, `?` one character, `\` escapes) excludes a table when it matches either the table's
 * name (`temp_*`) or `schema.table` (`audit.*`), unquoted and case-sensitive, as the catalog spells them.
 */
export function tableFilter(sync: Config['sync']): TableFilter {
  const schemas = new Set(sync.schemas);
  const patterns = sync.excludedTables.map((pattern) => ({ pattern, matches: wildcardMatch(pattern, { separator: false }) }));
  return (table) => {
    if (!schemas.has(table.schema)) return `schema not in SYNC_SCHEMA (${sync.schemas.join(', ')})`;
    const excludedBy = patterns.find(({ matches }) => matches(table.table) || matches(`${table.schema}.${table.table}`));
    if (excludedBy) return `matches EXCLUDED_TABLES pattern ${excludedBy.pattern}`;
    return peerDbNameProblem(table) ?? null;
  };
}
