import type { ClickHouseClient } from '@clickhouse/client';
import { qualifiedTable, quoteString } from './clickhouse-sql.js';
import { failedPrecondition, internal, type FlowApiError } from './errors.js';
import type { ConnectionSettings, FlowConnectionConfigs } from './messages.js';
import { ALLOW_NON_EMPTY_TABLES, envFlag } from './settings.js';
import { connectionError } from './peer-validation.js';
import { replicaIdentityProblem, replicationProblem } from './source-replication.js';
import { connectToSource, parseTableIdentifier, readTableSchema, type QualifiedTable } from './source-table.js';

/**
 * The checks PeerDB's CreateCDCFlow makes before it starts a mirror (flow/cmd/validate_mirror.go
 * validateCDCMirrorImpl): a source it can connect to, with replication (ValidateMirrorSource), every source table
 * identifier parses and names an existing table whose schema it can read (REPLICA IDENTITY NOTHING fails there;
 * a table without a key does not), and, for an initial snapshot, no destination table already holding rows
 * unless the mirror's env allows it. PeerDB answers a failed check with 500 Internal
 * `invalid mirror: rpc error: code = FailedPrecondition desc = ...` (handler.go CreateCDCFlow), synchronously: the
 * mirror is not created. Unreachable databases answer the same way: only the message tells them apart.
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
    return failedPrecondition(`failed to create source connector: ${connectionError(source, error)}`);
  }
  try {
    const replication = await replicationProblem(source, client);
    if (replication) return failedPrecondition(`failed to validate source connector ${config.sourceName}: ${replication}`);
    const missing: string[] = [];
    for (const table of tables) {
      if (!(await readTableSchema(client, table))) missing.push(`${table.schema}.${table.table}`);
    }
    if (missing.length > 0) return failedPrecondition(`source tables do not exist: ${missing.join(', ')}`);
    for (const table of tables) {
      const problem = await replicaIdentityProblem(client, table);
      if (problem) {
        return failedPrecondition(`failed to get source table schema: [getTableSchema] error getting replica identity for table ${problem}`);
      }
    }
    return undefined;
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
