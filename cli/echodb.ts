#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { loadConfig, ConfigError } from '../lib/config.js';
import { withPostgresClient } from '../lib/postgres.js';
import { installCapture, uninstallCapture, readMigrations } from '../sql/migrations.js';
import { runDemo } from './demo.js';
import { ROLES, runRoles, type Role } from './run.js';
import { reconcile } from '../listener/reconcile.js';
import { Client, Connection } from '@temporalio/client';

/** Exit codes scripts can rely on. */
const EXIT = { ok: 0, failure: 1, usage: 2, config: 78 } as const;

function describeTarget(config: ReturnType<typeof loadConfig>): string {
  const { host, port, database, user } = config.postgres;
  return `database "${database}" on ${host}:${port} as "${user}"`;
}

const program = new Command()
  .name('echodb')
  .description('Keeps ClickHouse mirrored from PostgreSQL: DDL capture, PeerDB mirrors, verification on Temporal.')
  .showHelpAfterError()
  .exitOverride();

program
  .command('setup')
  .description(
    "install EchoDB's DDL capture into the source database (schema echodb, the outbox, the event triggers); " +
      're-runnable: applies only the migrations not yet applied',
  )
  .action(async () => {
    const config = loadConfig();
    const applied = await withPostgresClient(config.postgres, (client) => installCapture(client));
    const target = describeTarget(config);
    if (applied.length === 0) {
      console.log(`setup: ${target} is up to date (${readMigrations().length} migrations applied earlier)`);
    } else {
      console.log(`setup: applied ${applied.map((m) => `${String(m.version).padStart(3, '0')}_${m.name}`).join(', ')} to ${target}`);
    }
  });

program
  .command('uninstall')
  .description("remove everything `echodb setup` installed in the source database (the outbox's rows included)")
  .action(async () => {
    const config = loadConfig();
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
    const connection = await Connection.connect({ address: config.temporal.address });
    try {
      const client = new Client({ connection, namespace: config.temporal.namespace });
      const report = await reconcile(client, config.temporal.taskQueue);
      const lines = [
        ...report.added.map(({ mirror, table }) => `  add    ${table} to ${mirror}`),
        ...report.removed.map(({ mirror, table }) => `  remove ${table} from ${mirror}`),
        ...report.unwatched.map(({ table, reason }) => `  leave  ${table} in its mirror: ${reason}`),
        ...report.skipped.map(({ table, reason }) => `  skip   ${table}: ${reason}`),
      ];
      console.log(`reconcile: ${report.added.length} to add, ${report.removed.length} to remove`);
      if (lines.length > 0) console.log(lines.join('\n'));
    } finally {
      await connection.close();
    }
  });

program
  .command('demo')
  .description(
    'start a throwaway local PostgreSQL, install the DDL capture, run sample DDL and show each captured event; ' +
      'keeps running for your own psql session until Ctrl-C',
  )
  .option('--exit', 'stop after the sample DDL instead of waiting for Ctrl-C')
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
  } else {
    console.error(`echodb: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = EXIT.failure;
  }
}
