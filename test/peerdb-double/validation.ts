import type { ClickHouseClient } from '@clickhouse/client';
import { qualifiedTable, quoteString } from './clickhouse-sql.js';
import { failedPrecondition, internal, type FlowApiError } from './errors.js';
import type { ConnectionSettings, FlowConnectionConfigs } from './messages.js';
import { ALLOW_NON_EMPTY_TABLES, envFlag } from './settings.js';
import { connectToSource, parseTableIdentifier, readTableSchema, type QualifiedTable } from './source-table.js';

/**
 * The checks PeerDB's CreateCDCFlow makes before it starts a mirror (flow/cmd/validate_mirror.go): every source
 * table identifier parses and names an existing table, and, for an initial snapshot, no destination table
 * already holds rows unless the mirror's env allows it. PeerDB answers a failed check with 500 Internal
 * `invalid mirror: rpc error: code = FailedPrecondition desc = ...`, synchronously: the mirror is not created.
 */
export async function validateMirror(
  config: FlowConnectionConfigs,
  source: ConnectionSettings,
  destination: ConnectionSettings,
  clickhouse: ClickHouseClient,
): Promise<void> {
  const problem =
    (await checkSourceTables(config, source)) ?? (await checkDestinationTables(config, destination, clickhouse));
  if (problem) throw internal(`invalid mirror: ${problem.wrapped()}`);
}

async function checkSourceTables(config: FlowConnectionConfigs, source: ConnectionSettings): Promise<FlowApiError | undefined> {
  const tables: QualifiedTable[] = [];
  for (const { sourceTableIdentifier } of config.tableMappings) {
    const table = parseTableIdentifier(sourceTableIdentifier);
    if (!table) {
      return failedPrecondition(
        `failed to validate source connector ${config.sourceName}: invalid source table identifier: invalid table name: ${sourceTableIdentifier}`,
      );
    }
    tables.push(table);
  }
  let client;
  try {
    client = await connectToSource(source);
  } catch (error) {
    return failedPrecondition(`failed to create source connector: ${(error as Error).message}`);
  }
  try {
    const missing: string[] = [];
    for (const table of tables) {
      if (!(await readTableSchema(client, table))) missing.push(`${table.schema}.${table.table}`);
    }
    return missing.length > 0 ? failedPrecondition(`source tables do not exist: ${missing.join(', ')}`) : undefined;
  } finally {
    await client.end();
  }
}

async function checkDestinationTables(
  config: FlowConnectionConfigs,
  destination: ConnectionSettings,
  clickhouse: ClickHouseClient,
): Promise<FlowApiError | undefined> {
  const fail = (reason: string) =>
    failedPrecondition(`failed to validate destination connector ${config.destinationName}: ${reason}`);
  if (config.tableMappings.some((mapping) => mapping.destinationTableIdentifier === '')) {
    return fail('destination table identifier is empty');
  }
  if (!config.doInitialSnapshot || envFlag(config.env, ALLOW_NON_EMPTY_TABLES)) return undefined;
  for (const { destinationTableIdentifier: name } of config.tableMappings) {
    const exists = await clickhouse.query({
      query: `SELECT 1 FROM system.tables WHERE database = ${quoteString(destination.database)} AND name = ${quoteString(name)}`,
      format: 'JSONEachRow',
    });
    if ((await exists.json()).length === 0) continue;
    const count = await clickhouse.query({
      query: `SELECT count() AS rows FROM ${qualifiedTable(destination.database, name)}`,
      format: 'JSONEachRow',
    });
    const [row] = await count.json<{ rows: string }>();
    if (row && row.rows !== '0') return fail(`table ${name} exists and is not empty`);
  }
  return undefined;
}
