#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { loadConfig, ConfigError, type Config } from '../lib/config.js';
import { cleanupScheduleId, verifyAllScheduleId } from '../lib/workflow-safe/workflow-ids.js';
import { registerSearchAttributes } from '../lib/search-attribute-registration.js';
import { withTemporalClient } from '../lib/temporal-client.js';
import { deleteVerifyAllSchedule, ensureVerifyAllSchedule, verifyAllIntervalSeconds } from '../lib/verify-all-schedule.js';
import { deleteCleanupSchedule, describeCleanupSchedule, ensureCleanupSchedule } from '../lib/cleanup-schedule.js';
import { parseBatchSize, parseDays } from '../lib/retention.js';
import { withPostgresClient } from '../lib/postgres.js';
import { clickhouseUrl, createClickHouseClient } from '../lib/clickhouse.js';
import { ensureClickHouseDatabase } from '../lib/clickhouse-database.js';
import { tlsHint } from '../lib/tls.js';
import { CircuitBreaker } from '../lib/circuit-breaker.js';
import { isPeerDbOutage, PeerDbClient } from '../lib/peerdb/client.js';
import { PeerUnreachable } from '../lib/workflow-safe/peerdb-errors.js';
import { describePeer, ensurePeers } from '../lib/peerdb/peers.js';
import { unreachableStaging } from '../lib/peerdb/staging-reachability.js';
import { installCapture, uninstallCapture, readMigrations, SchemaTooNew } from '../sql/migrations.js';
import { runDemo } from './demo.js';
import type { CleanupCommandOptions, OperationOptions, SlotsCommandOptions } from './operations.js';
import { parseTableArgument } from './table-argument.js';
import type { TableRef } from '../workflows/model.js';
import { ROLES, runRoles, type Role } from './run.js';
import { reconcile } from '../listener/reconcile.js';
import type { Client } from '@temporalio/client';
import type { ClickHouseClient } from '@clickhouse/client';
import type pg from 'pg';

/**
 * Exit codes scripts can rely on. `found`: the check ran and found a problem (a mismatch, a nondeterministic
 * history), as opposed to `failure`: the command could not do its job.
 */
const EXIT = { ok: 0, failure: 1, usage: 2, found: 3, config: 78, schemaTooNew: 79 } as const;

function describeTarget(config: ReturnType<typeof loadConfig>): string {
  const { host, port, database, user } = config.postgres;
  return `database "${database}" on ${host}:${port} as "${user}"`;
}

/** Runs `use` on a Temporal client; a failure says which server it was, what was being done, and what to do. */
async function onTemporal<T>(config: Config, doing: string, use: (client: Client) => Promise<T>, hint = ''): Promise<T> {
  try {
    return await withTemporalClient(config.temporal, use);
  } catch (error) {
    const { address, namespace } = config.temporal;
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`could not ${doing} on Temporal at ${address} (namespace ${namespace}): ${reason}${hint}`, { cause: error });
  }
}

/** Runs `use` on a connection to the source database; a failure says which one, and what to check for TLS. */
async function onPostgres<T>(config: Config, doing: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  try {
    return await withPostgresClient(config.postgres, use);
  } catch (error) {
    if (error instanceof SchemaTooNew) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`could not ${doing} in ${describeTarget(config)}: ${reason}${tlsHint(error, 'POSTGRES')}`, { cause: error });
  }
}

/** Runs `use` on EchoDB's ClickHouse client; a failure says which server, and what to check for TLS. */
async function onClickHouse<T>(config: Config, doing: string, use: (clickhouse: ClickHouseClient) => Promise<T>): Promise<T> {
  const clickhouse = createClickHouseClient(config.clickhouse);
  try {
    return await use(clickhouse);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`could not ${doing} on ClickHouse at ${clickhouseUrl(config.clickhouse)}: ${reason}${tlsHint(error, 'CLICKHOUSE')}`, { cause: error });
  } finally {
    await clickhouse.close();
  }
}

/** Runs `use` on PeerDB's Flow API; a failure says where it was, what was being done, and what to do. */
async function onPeerDb<T>(config: Config, doing: string, use: (peerdb: PeerDbClient) => Promise<T>, hint = ''): Promise<T> {
  const { apiUrl } = config.peerdb;
  const breaker = new CircuitBreaker('peerdb_api', config.circuitBreaker.peerdb, isPeerDbOutage);
  try {
    return await use(PeerDbClient.fromConfig(config.peerdb, breaker));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const unreachable = error instanceof PeerUnreachable
      ? '; PeerDB connects to each peer to validate it, at the address its containers use (POSTGRES_PEER_HOST/_PORT, CLICKHOUSE_PEER_HOST/_PORT)'
      : '';
    throw new Error(`could not ${doing} through PeerDB's Flow API at ${apiUrl}: ${reason}${unreachable}${hint}`, { cause: error });
  }
}

const program = new Command()
  .name('echodb')
  .description('Keeps ClickHouse mirrored from PostgreSQL: DDL capture, PeerDB mirrors, verification on Temporal.')
  .showHelpAfterError()
  .exitOverride();

program
  .command('setup')
  .description(
    "install EchoDB's DDL capture into the source database (schema echodb, the outbox, the event triggers), " +
      "create or update PeerDB's source and destination peers through the Flow API (PEERDB_API_URL), then " +
      "register EchoDB's search attributes in the Temporal namespace when missing, create or update the Temporal schedules that run verify-all every CONSISTENCY_CHECK_INTERVAL and cleanup every CLEANUP_INTERVAL; " +
      're-runnable: applies only the migrations not yet applied',
  )
  .option('--no-peers', 'leave PeerDB alone: do not create or update the peers (the worker creates them before its first mirror anyway)')
  .option('--no-schedule', 'leave Temporal alone: do not register the search attributes nor create the schedules (for a database set up before Temporal is reachable)')
  .action(async (options: { peers: boolean; schedule: boolean }) => {
    const config = loadConfig();
    // Before anything is installed: PeerDB would accept such a peer, and every sync into it would fail.
    const unreachable = options.peers ? unreachableStaging(config) : undefined;
    if (unreachable !== undefined) throw new ConfigError([`PEERDB_S3_ENDPOINT: ${unreachable}`]);
    const applied = await onPostgres(config, 'install the SQL', (client) => installCapture(client));
    const target = describeTarget(config);
    if (applied.length === 0) {
      console.log(`setup: ${target} is up to date (${readMigrations().length} migrations applied earlier)`);
    } else {
      console.log(`setup: applied ${applied.map((m) => `${String(m.version).padStart(3, '0')}_${m.name}`).join(', ')} to ${target}`);
    }
    const skipHint = (what: string, flag: string) =>
      `; the SQL is installed: run setup again once ${what} is reachable, or pass ${flag}`;
    if (options.peers) {
      // PeerDB's ClickHouse peer logs in with this database, which must exist.
      const { database } = config.clickhouse;
      const created = await onClickHouse(config, `make sure database "${database}" exists`, (clickhouse) => ensureClickHouseDatabase(clickhouse, database));
      if (created) console.log(`setup: created ClickHouse database "${database}" on ${clickhouseUrl(config.clickhouse)}`);
      const peers = await onPeerDb(config, 'create the peers', (peerdb) => ensurePeers(peerdb, config), skipHint('PeerDB', '--no-peers'));
      console.log(`setup: PeerDB peers ${peers.map(describePeer).join(' and ')} created or updated`);
    }
    if (!options.schedule) return;
    const { namespace } = config.temporal;
    const registered = await onTemporal(
      config,
      "register EchoDB's search attributes",
      (client) => registerSearchAttributes(client.connection, namespace),
      skipHint('Temporal', '--no-schedule'),
    );
    console.log(
      registered.length > 0
        ? `setup: search attributes ${registered.join(', ')} registered in Temporal namespace ${namespace}`
        : `setup: Temporal namespace ${namespace} has EchoDB's search attributes`,
    );
    const outcome = await onTemporal(
      config,
      'create the verify-all schedule',
      (client) => ensureVerifyAllSchedule(client, config),
      skipHint('Temporal', '--no-schedule'),
    );
    const scheduleId = verifyAllScheduleId(config.temporal.taskQueue);
    console.log(`setup: verify-all schedule ${scheduleId} ${outcome} (every ${verifyAllIntervalSeconds(config)} s)`);
    const cleanup = await onTemporal(
      config,
      'create the cleanup schedule',
      (client) => ensureCleanupSchedule(client, config),
      skipHint('Temporal', '--no-schedule'),
    );
    console.log(`setup: ${describeCleanupSchedule(config, cleanup)}`);
  });

program
  .command('uninstall')
  .description("remove everything `echodb setup` installed: the verify-all and cleanup schedules, then the SQL (the outbox's rows included)")
  .option('--no-schedule', 'leave Temporal alone: remove only the SQL, not the schedules')
  .action(async (options: { schedule: boolean }) => {
    const config = loadConfig();
    // The schedule goes first: its runs would fail against a database without EchoDB's tables.
    if (options.schedule) {
      const outcome = await onTemporal(
        config,
        'delete the verify-all schedule',
        (client) => deleteVerifyAllSchedule(client, config),
        '; nothing was removed: pass --no-schedule to remove only the SQL',
      );
      const scheduleId = verifyAllScheduleId(config.temporal.taskQueue);
      console.log(`uninstall: ${outcome === 'deleted' ? 'deleted the' : 'found no'} verify-all schedule ${scheduleId}`);
      const cleanup = await onTemporal(
        config,
        'delete the cleanup schedule',
        (client) => deleteCleanupSchedule(client, config),
        '; the SQL was not removed: pass --no-schedule to remove only the SQL',
      );
      console.log(`uninstall: ${cleanup === 'deleted' ? 'deleted the' : 'found no'} cleanup schedule ${cleanupScheduleId(config.temporal.taskQueue)}`);
    }
    await withPostgresClient(config.postgres, (client) => uninstallCapture(client));
    console.log(`uninstall: removed EchoDB's schema and event triggers from ${describeTarget(config)}`);
  });

program
  .command('run')
  .description("run EchoDB's long-lived roles until SIGINT or SIGTERM (graceful: work in hand is finished)")
  .option(
    '--roles <roles>',
    `comma-separated roles: ${Object.entries(ROLES).map(([role, what]) => `${role} (${what})`).join('; ')}`,
    Object.keys(ROLES).join(','),
  )
  .action(async (options: { roles: string }) => {
    const roles = options.roles.split(',').map((role) => role.trim()).filter(Boolean);
    const unknown = roles.filter((role) => !(role in ROLES));
    if (unknown.length > 0 || roles.length === 0) {
      throw new InvalidArgumentError(`unknown role(s) ${unknown.join(', ') || '(none)'}; available: ${Object.keys(ROLES).join(', ')}`);
    }
    await runRoles(loadConfig(), roles as Role[]);
    console.log('run: stopped');
  });

program
  .command('reconcile')
  .description(
    'compare the watched schemas with the mirrors and send the mirror workflows the events that repair the ' +
      'difference (tables created before setup or while the triggers were off, mirrored tables that are gone); ' +
      'needs a running worker',
  )
  .action(async () => {
    const config = loadConfig();
    await withTemporalClient(config.temporal, async (client) => {
      const report = await reconcile(client, config.temporal.taskQueue);
      const lines = [
        ...report.added.map(({ mirror, table }) => `  add    ${table} to ${mirror}`),
        ...report.removed.map(({ mirror, table }) => `  remove ${table} from ${mirror}`),
        ...report.unwatched.map(({ table, reason }) => `  leave  ${table} in its mirror: ${reason}`),
        ...report.skipped.map(({ table, reason }) => `  skip   ${table}: ${reason}`),
      ];
      console.log(`reconcile: ${report.added.length} to add, ${report.removed.length} to remove`);
      if (lines.length > 0) console.log(lines.join('\n'));
    });
  });

program
  .command('replay')
  .description(
    "replay a workflow's history against the workflow code, to prove that the code still makes the decisions " +
      'the history recorded (a change that does not is a nondeterminism: running workflows would fail)',
  )
  .argument('[workflowId]', 'the workflow, e.g. echodb-mirror:echodb_public (with --file: the one the file records)')
  .addOption(new Option('--run-id <runId>', 'the run to replay (default: the latest)'))
  .addOption(
    new Option('--file <history.json>', 'read the history from this file (`temporal workflow show -w ID -o json`) instead of Temporal')
      .conflicts('runId'),
  )
  .option('--workflows <path>', "replay against this workflows entry (e.g. a new release's workflows/index.ts), not this build's")
  .addHelpText(
    'after',
    `\nExit codes: ${EXIT.ok} deterministic; ${EXIT.found} nondeterministic (the code would not replay the history); ` +
      `${EXIT.failure} the replay could not run (history not found, Temporal unreachable, workflow code that fails).`,
  )
  .action(async (argument: string | undefined, options: { runId?: string; file?: string; workflows?: string }) => {
    const replay = await import('./replay.js');
    const { workflowId, history } = options.file !== undefined
      ? replay.readHistoryFile(options.file, argument)
      : await (async (id = argument) => {
          if (id === undefined) throw new InvalidArgumentError('replay needs a workflow ID, or --file');
          const history = await onTemporal(loadConfig(), 'fetch the history', (client) => replay.fetchWorkflowHistory(client, id, options.runId));
          return { workflowId: id, history };
        })();
    replay.quietTemporalRuntime();
    const replayed = await replay.replayHistory(history, workflowId, options.workflows);
    const what = `replay: ${workflowId} (run ${replayed.runId ?? 'unknown'})`;
    if (replayed.nondeterminism === null) {
      console.log(`${what}: deterministic, ${replayed.events} events`);
    } else {
      console.error(`${what}: nondeterministic: ${replayed.nondeterminism}`);
      process.exitCode = EXIT.found;
    }
  });

const outputOptions = (command: Command) =>
  command
    .option('--json', 'print JSON (the HTTP API\'s shape) instead of text')
    .option('--wait <seconds>', 'give up waiting after this many seconds (default: wait until done)', seconds);

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0)) throw new InvalidArgumentError(`${value} is not a positive number of seconds`);
  return n;
}

const exitCodeHelp = (found: string) =>
  `\nExit codes: ${EXIT.ok} all match; ${EXIT.found} ${found}; ${EXIT.failure} the check could not be done ` +
  '(unknown table, a side that could not be counted, Temporal or PostgreSQL unreachable).';

outputOptions(
  program
    .command('verify')
    .description(
      "count a mirrored table's rows in PostgreSQL and in ClickHouse now (a verify workflow, retried on a mismatch); " +
        'needs a running worker',
    )
    .argument('<schema.table>', 'the table, as PostgreSQL reads it: public.orders, or public."Mixed Case"', parseTableArgument)
    .addHelpText('after', exitCodeHelp('the counts differ')),
).action(async (table: TableRef, options: OperationOptions) => {
  const { verifyTable } = await import('./operations.js');
  process.exitCode = EXIT[await verifyTable(loadConfig(), table, options)];
});

outputOptions(
  program
    .command('diff')
    .description(
      "compare a mirrored table's rows in PostgreSQL and in ClickHouse, key by key (a diff workflow: segment checksums, " +
        'then the differing rows, looked at again after DIFF_SETTLE_DELAY so that lag is not reported as a difference); ' +
        'needs a running worker',
    )
    .argument('<schema.table>', 'the table, as PostgreSQL reads it: public.orders, or public."Mixed Case"', parseTableArgument)
    .addHelpText('after', exitCodeHelp('rows or columns differ (or, for a table without a primary key, the counts)')),
).action(async (table: TableRef, options: OperationOptions) => {
  const { diffTable } = await import('./operations.js');
  process.exitCode = EXIT[await diffTable(loadConfig(), table, options)];
});

outputOptions(
  program
    .command('verify-all')
    .description('run reconcile, then verify every mirrored table (what the schedule runs); needs a running worker')
    .addHelpText('after', exitCodeHelp('some counts differ')),
).action(async (options: OperationOptions) => {
  const { verifyAll } = await import('./operations.js');
  process.exitCode = EXIT[await verifyAll(loadConfig(), options)];
});

program
  .command('status')
  .description('show the leader, the outbox backlog, the mirrors, their replication slots and the latest verifications')
  .option('--json', 'print JSON instead of text')
  .action(async (options: OperationOptions) => {
    const { status } = await import('./operations.js');
    process.exitCode = EXIT[await status(loadConfig(), options)];
  });

program
  .command('slots')
  .description(
    "show the replication slots and publications of EchoDB's mirrors (active, WAL retained, wal_status, inactive " +
      'since) and the orphans: those of mirrors EchoDB dropped. With --drop-orphans, drop the orphans: never one of a ' +
      'mirror EchoDB or PeerDB still has, never an active slot; asks first unless --yes; records each drop in ' +
      'echodb.dropped_orphans (needs the REPLICATION attribute, and to own the publications)',
  )
  .option('--drop-orphans', 'drop the orphan slots and publications (after asking)')
  .option('--yes', 'with --drop-orphans: do not ask')
  .option('--json', 'print JSON instead of text')
  .addHelpText(
    'after',
    `\nExit codes: ${EXIT.ok} no orphan (or every orphan dropped); ${EXIT.found} orphans found (not dropped); ` +
      `${EXIT.failure} PostgreSQL or PeerDB unreachable, not confirmed, or an orphan could not be dropped; ${EXIT.usage} an invalid option; ` +
      `${EXIT.config} invalid configuration.`,
  )
  .action(async (options: SlotsCommandOptions) => {
    const { slots } = await import('./operations.js');
    process.exitCode = EXIT[await slots(loadConfig(), options)];
  });

const optionParser = (parse: (raw: string) => number | undefined, expected: string) => (raw: string) => {
  const value = parse(raw);
  if (value === undefined) throw new InvalidArgumentError(`${JSON.stringify(raw)} is not ${expected}`);
  return value;
};

program
  .command('cleanup')
  .description(
    "delete EchoDB's history rows older than the retention period: dispatched and skipped outbox events, mirror " +
      'operations and verifications, in batches of short transactions (what the cleanup schedule runs). Kept ' +
      "whatever their age: pending events, each table's latest verification, each mirror's latest operation",
  )
  .option('--older-than <days>', 'delete rows older than this many whole days (default: RETENTION_DAYS, 7)', optionParser(parseDays, 'a whole number of days of 1 or more'))
  .option('--batch-size <rows>', 'rows per DELETE statement (default: RETENTION_BATCH_SIZE, 1000)', optionParser(parseBatchSize, 'a number of rows from 1 to 100000'))
  .option('--dry-run', 'count what would be deleted, delete nothing')
  .option('--json', 'print JSON instead of text')
  .addHelpText(
    'after',
    `\nExit codes: ${EXIT.ok} done; ${EXIT.usage} an invalid option; ${EXIT.failure} PostgreSQL unreachable or EchoDB not installed; ` +
      `${EXIT.config} invalid configuration; ${EXIT.schemaTooNew} EchoDB's tables are newer than this release.`,
  )
  .action(async (options: CleanupCommandOptions) => {
    const { cleanup } = await import('./operations.js');
    process.exitCode = EXIT[await cleanup(loadConfig(), options)];
  });

program
  .command('demo')
  .description(
    'the whole flow on this machine, without Docker: throwaway PostgreSQL, Redis, ClickHouse and Temporal (with ' +
      'its Web UI), the PeerDB test double and EchoDB with all roles; creates a sample table and shows its event, ' +
      'mirror and verification, then keeps running for your own psql session until Ctrl-C',
  )
  .option('--exit', 'stop after the sample table is verified instead of waiting for Ctrl-C')
  .action((options: { exit?: boolean }) => runDemo(options));

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof InvalidArgumentError) {
    console.error(`echodb: ${error.message}`);
    process.exitCode = EXIT.usage;
  } else if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else if (error instanceof ConfigError) {
    console.error(error.message);
    process.exitCode = EXIT.config;
  } else if (error instanceof SchemaTooNew) {
    console.error(`echodb: ${error.message}`);
    process.exitCode = EXIT.schemaTooNew;
  } else {
    console.error(`echodb: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = EXIT.failure;
  }
}
