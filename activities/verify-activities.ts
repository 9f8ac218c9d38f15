import { Context } from '@temporalio/activity';
import pg from 'pg';
import { countLiveRows, countLiveRowsOfEach, qualifiedTable } from '../lib/clickhouse-sql.js';
import { isClickHouseOutage } from '../lib/clickhouse.js';
import { mirroredTables, type MirroredTable } from '../lib/mirrored-tables.js';
import { isPostgresOutage } from '../lib/postgres.js';
import { packInOrder } from '../lib/workflow-safe/batches.js';
import { CircuitOpen } from '../lib/workflow-safe/peerdb-errors.js';
import type { MirrorTable, RowCounts, TableCount, VerificationResult } from '../workflows/model.js';
import type { ActivityDependencies } from './index.js';
import { sourceQueries } from './source-database.js';
import { withBreakerAwareRetries } from './temporal-errors.js';

/**
 * The longest count statement sent to either database: a batch whose statement would be longer is counted in
 * several. ClickHouse parses at most max_query_size (256 KiB by default) of a statement; a batch of tables whose
 * names fit one search attribute (lib/workflow-safe/batches.ts) stays far below this.
 */
const MAX_COUNT_STATEMENT_LENGTH = 64 * 1024;

/** One database as a batched count sees it. */
interface CountedSide {
  name: 'PostgreSQL' | 'ClickHouse';
  /** The rows of each table, counted in one statement: the counts in the tables' order. */
  countEach(tables: MirrorTable[]): Promise<number[]>;
  countOne(table: MirrorTable): Promise<number>;
  /** The length of the statement's part for this table. */
  statementLength(table: MirrorTable): number;
  /** The database itself is unavailable, rather than one table's count failing on a healthy database. */
  isOutage(error: unknown): boolean;
}

/**
 * Counts every table on one side: one statement per batch (MAX_COUNT_STATEMENT_LENGTH), and when a statement fails
 * (a table missing, say), each of its tables alone, so that only the table at fault gets an error. The side being
 * unavailable fails the whole count: an unreachable side is an error, never a count of 0.
 */
async function countSide(side: CountedSide, tables: MirrorTable[]): Promise<(number | { error: string })[]> {
  const statements = packInOrder(tables, Number.POSITIVE_INFINITY, MAX_COUNT_STATEMENT_LENGTH, (table) => side.statementLength(table));
  const counts: (number | { error: string })[] = [];
  for (const part of statements) {
    try {
      counts.push(...(await side.countEach(part)));
    } catch {
      for (const table of part) {
        try {
          counts.push(await side.countOne(table));
        } catch (error) {
          if (side.isOutage(error)) throw error;
          counts.push({ error: `${side.name}: ${error instanceof Error ? error.message : String(error)}` });
        }
      }
    }
  }
  return counts;
}

/** Rows of a count statement (`i`, `n`) as counts in the tables' order; a table without its row fails the whole. */
function inOrder(rows: { i: string | number; n: string | number }[], tables: MirrorTable[], side: string): number[] {
  const counts = new Map(rows.map((row) => [Number(row.i), Number(row.n)]));
  return tables.map((table, i) => {
    const count = counts.get(i);
    if (count === undefined) throw new Error(`${side} returned no count for ${table.source}`);
    return count;
  });
}

const sourceTable = (table: MirrorTable) => `${pg.escapeIdentifier(table.schema)}.${pg.escapeIdentifier(table.table)}`;

export function createVerifyActivities(deps: ActivityDependencies) {
  const { config, postgres, postgresBreaker, clickhouse } = deps;
  const querySource = sourceQueries(deps);
  const database = config.clickhouse.database;

  const countPostgres = async (text: string) =>
    (await postgresBreaker.execute(() => postgres.query<{ i: number; n: string }>(text))).rows;
  const countClickHouse = async (query: string) => {
    const result = await clickhouse.query({ query, format: 'JSONEachRow', abort_signal: Context.current().cancellationSignal });
    return result.json<{ i: string | number; n: string | number }>();
  };

  const sides: [CountedSide, CountedSide] = [
    {
      name: 'PostgreSQL',
      countEach: async (tables) =>
        inOrder(await countPostgres(tables.map((t, i) => `SELECT ${i} AS i, count(*) AS n FROM ${sourceTable(t)}`).join(' UNION ALL ')), tables, 'PostgreSQL'),
      countOne: async (table) => Number((await countPostgres(`SELECT 0 AS i, count(*) AS n FROM ${sourceTable(table)}`))[0]?.n),
      statementLength: (table) => sourceTable(table).length + 50,
      isOutage: (error) => error instanceof CircuitOpen || isPostgresOutage(error),
    },
    {
      name: 'ClickHouse',
      countEach: async (tables) =>
        inOrder(await countClickHouse(countLiveRowsOfEach(database, tables.map((t) => t.destination))), tables, 'ClickHouse'),
      countOne: async (table) => {
        const [row] = await countClickHouse(countLiveRows(database, table.destination));
        if (row === undefined) throw new Error(`ClickHouse returned no count for ${qualifiedTable(database, table.destination)}`);
        return Number(row.n);
      },
      statementLength: (table) => countLiveRows(database, table.destination).length + 30,
      isOutage: isClickHouseOutage,
    },
  ];

  /** Stores finished verifications of this workflow run, each table once however often the activity is retried. */
  async function insertVerifications(results: VerificationResult[]): Promise<void> {
    const { workflowExecution } = Context.current().info;
    if (!workflowExecution) throw new Error('verifications are recorded only inside a verify workflow');
    const column = <T>(value: (result: VerificationResult) => T) => results.map(value);
    await querySource(
      `INSERT INTO echodb.verifications
         (workflow_id, run_id, mirror, schema_name, table_name, destination, status,
          postgres_count, clickhouse_count, attempts, error)
       SELECT $1::text, $2::text, v.* FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                                      $8::bigint[], $9::bigint[], $10::int[], $11::text[]) AS v
       ON CONFLICT (workflow_id, run_id, schema_name, table_name) DO NOTHING`,
      [
        workflowExecution.workflowId,
        workflowExecution.runId,
        column((r) => r.mirror),
        column((r) => r.schema),
        column((r) => r.table),
        column((r) => r.destination),
        column((r) => r.status),
        column((r) => r.postgresCount),
        column((r) => r.clickhouseCount),
        column((r) => r.attempts),
        column((r) => r.error ?? null),
      ],
    );
  }

  return {
    /** Every table EchoDB's mirrors hold, from its destination claims (durable; no PeerDB call). */
    listMirroredTables(): Promise<MirroredTable[]> {
      return mirroredTables(querySource);
    },

    /**
     * Counts the table on both sides: PostgreSQL's count(*) and ClickHouse's live rows (FINAL, not deleted).
     * Either side failing fails the activity: an unreachable side is an error, never a count of 0.
     */
    async countRows(table: MirrorTable): Promise<RowCounts> {
      return withBreakerAwareRetries(async () => {
        const [postgresCount, clickhouseCount] = await Promise.all(sides.map((side) => side.countOne(table)));
        return { postgres: postgresCount!, clickhouse: clickhouseCount! };
      });
    },

    /**
     * Counts many tables on both sides at the cost of one statement per database: a UNION ALL of PostgreSQL's
     * count(*) of each, and one of ClickHouse's live rows of each (FINAL, not deleted). A statement that fails is
     * followed by each of its tables counted alone, so a table missing on one side gets an error and the others
     * their counts. A side that cannot be reached fails the activity (retried): never a count of 0.
     */
    async countTables(tables: MirrorTable[]): Promise<TableCount[]> {
      return withBreakerAwareRetries(async () => {
        const [onPostgres, onClickHouse] = await Promise.all(sides.map((side) => countSide(side, tables)));
        return tables.map((_, i): TableCount => {
          const [postgresCount, clickhouseCount] = [onPostgres![i]!, onClickHouse![i]!];
          if (typeof postgresCount === 'number' && typeof clickhouseCount === 'number') {
            return { counts: { postgres: postgresCount, clickhouse: clickhouseCount } };
          }
          const errors = [postgresCount, clickhouseCount].flatMap((count) => (typeof count === 'number' ? [] : [count.error]));
          return { error: errors.join('; ') };
        });
      });
    },

    /** Stores a finished verification in echodb.verifications (once per workflow run and table). */
    async recordVerification(result: VerificationResult): Promise<void> {
      await insertVerifications([result]);
    },

    /** Stores the verifications a batch finished (verifyTablesWorkflow), in one statement, each table once. */
    async recordVerifications(results: VerificationResult[]): Promise<void> {
      if (results.length > 0) await insertVerifications(results);
    },
  };
}
