#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { loadConfig, ConfigError } from '../lib/config.js';
import { withPostgresClient } from '../lib/postgres.js';
import { installCapture, uninstallCapture, readMigrations } from '../sql/migrations.js';
import { runDemo } from './demo.js';

/** Exit codes scripts can rely on. */
const EXIT = { ok: 0, failure: 1, usage: 2, config: 78 } as const;
const RUNNABLE_ROLES = ['worker'];

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
  .description('run EchoDB\'s long-lived roles until SIGINT or SIGTERM (graceful: work in hand is finished)')
  .option('--roles <roles>', 'comma-separated roles; available: worker (the Temporal worker: mirror and verify workflows)', 'worker')
  .action(async (options: { roles: string }) => {
    const roles = options.roles.split(',').map((role) => role.trim()).filter(Boolean);
    const unknown = roles.filter((role) => !RUNNABLE_ROLES.includes(role));
    if (unknown.length > 0 || roles.length === 0) {
      throw new InvalidArgumentError(`unknown role(s) ${unknown.join(', ') || '(none)'}; available: ${RUNNABLE_ROLES.join(', ')}`);
    }
    const config = loadConfig();
    const { createEchoWorker } = await import('../workers/worker.js');
    const worker = await createEchoWorker(config);
    console.log(
      `run: worker ${config.workerId} on task queue "${config.temporal.taskQueue}" of namespace ` +
        `"${config.temporal.namespace}" at ${config.temporal.address}`,
    );
    await worker.run();
    console.log('run: stopped');
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
