/**
 * PeerDB's CDC pull as the source PostgreSQL sees it, for the double's `activeSlots` option: while a mirror runs,
 * a real replication client (PostgreSQL's own pg_recvlogical) streams pgoutput from the mirror's slot and confirms
 * what it received, so the slot is active and its confirmed_flush_lsn advances; when the mirror stops running the
 * client goes, and the slot is inactive and retains WAL.
 *
 * What PeerDB does (v0.37.4):
 * - CDCFlowWorkflow (flow/workflows/cdc_flow.go), once the mirror is RUNNING, runs the SyncFlow activity for as long
 *   as the run lasts (StartToCloseTimeout 365 days, MaximumAttempts 1). FlowableActivity.SyncFlow
 *   (flow/activities/flowable.go) opens the replication connection once (PostgresConnector.SetupReplConn,
 *   flow/connectors/postgres/postgres_source.go, which also pings it every 15 s: runReplConnKeepalive) and keeps
 *   it across its pull-and-sync batches (flowable_core.go pullAndSyncCore); the first PullRecords starts streaming
 *   (postgres_source.go pullCore, MaybeStartReplication: START_REPLICATION with pgoutput's proto_version '1' and
 *   publication_names, plus messages 'true' on PostgreSQL 14 and later, replicationOptions), and PullCdcRecords
 *   (flow/connectors/postgres/cdc.go) confirms the consumed offset with standby status updates.
 * - A pause or a drop ends the main loop: cdc_flow.go calls cancelSync() and waits for the SyncFlow future
 *   (WaitForCancellation) before it continues as new into the pause loop, where no SyncFlow runs, or into
 *   DropFlowWorkflow, which then drops the slot (drop_flow.go, postgres_source.go PullFlowCleanup). SyncFlow's
 *   deferred srcClose closes the replication connection. Its walsender releases the slot a moment after the
 *   client went; PeerDB's DropFlowSource (flowable.go) retries a drop that meets the slot still active
 *   (ObjectInUse, not alerted), the double waits for the release instead, so that close() can drop it too.
 * - A SyncFlow that fails (the source restarted, max_wal_senders exhausted, the slot gone) is logged to flow_errors
 *   (flowable_core.go pullAndSyncCore: Alerter.LogFlowError, except "slot is already active", ObjectInUse), and the main
 *   loop sleeps 1 + min(ErrorCount, 9) minutes (ErrorCount reset after an hour without errors, and by a run that
 *   ends without error, such as a pause) before the run continues as new with a fresh SyncFlow.
 *
 * pg_recvlogical is started with --no-loop (it ends when its connection does, and the retry is this module's, on
 * PeerDB's schedule), -f /dev/null (the received changes are thrown away, as if synced at once), a status interval
 * of 1 s (whole seconds; 0 would send none) and an fsync interval of 0 (pg_recvlogical's docs: no fsync at all,
 * progress still reported), so confirmed_flush_lsn reaches the end of a commit about 2 s after it (measured on
 * PostgreSQL 15: the client is idle between status updates). `messages 'true'` is left out: it only adds pg_logical_emit_message output to the
 * stream, and older sources refuse it. Stopping sends SIGTERM; PostgreSQL 15's pg_recvlogical does not catch it
 * and ends at once, without a last status update, as a cancelled PeerDB pull ends with its connection.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dns from 'node:dns/promises';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import pg from 'pg';
import { MissingBinaryError, postgresBinDir } from '../servers/binaries.js';
import type { ConnectionSettings } from './messages.js';
import type { ReplicationNames } from './source-replication.js';
import { postgresConnection } from './tls.js';

/** Where PostgreSQL's pg_recvlogical is: beside the postgres binary the tests' server runs (test/servers/binaries.ts). */
export function pgRecvlogicalBinary(): string {
  let dir: string | undefined;
  try {
    dir = postgresBinDir();
  } catch {
    // reported below, naming pg_recvlogical
  }
  const file = dir === undefined ? undefined : path.join(dir, 'pg_recvlogical');
  try {
    if (file !== undefined) {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    }
  } catch {
    // reported below
  }
  throw new MissingBinaryError("PostgreSQL's pg_recvlogical (for the PeerDB double's activeSlots)", 'apt-get install postgresql');
}

/** What a pull connects to, read at each (re)start: the source peer may have been updated meanwhile. */
export interface PullTarget {
  settings: ConnectionSettings;
  names: ReplicationNames;
}

export interface PullHooks {
  /** How long to wait before pulling again after the `errors`+1-th failure in a row (0 for the first). */
  retryDelayMs(errors: number): number;
  /** A failed pull, for the mirror's flow_errors. */
  onError(message: string): void;
}

/** SIGTERM, then SIGKILL if the client has not gone after this long. */
const KILL_AFTER_MS = 5000;
/** How long a stop waits for PostgreSQL to release the slot once the client is gone (its walsender exits). */
const RELEASE_WAIT_MS = 5000;
/** PeerDB's ErrorCount starts over after an hour without errors (cdc_flow.go). */
const ERROR_COUNT_RESET_MS = 60 * 60 * 1000;
/** pg_recvlogical's -v line once START_REPLICATION succeeded: from then on its walsender holds the slot. */
const STREAMING = /streaming initiated/;

/** One running mirror's pull: pg_recvlogical, started again after a delay whenever it ends, until stopped. */
class SlotPull {
  private child: ChildProcess | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  /** The target of the last client that reached streaming, so that a stop waits for PostgreSQL to release the slot. */
  private streamed: PullTarget | undefined;
  readonly done: Promise<void>;

  constructor(
    private readonly binary: string,
    private readonly target: () => PullTarget,
    private readonly hooks: PullHooks,
    after: Promise<void>,
  ) {
    this.done = after.then(() => this.loop());
  }

  /** Ends the client (SIGTERM) and the retries, and resolves once PostgreSQL no longer holds the slot for it. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.child?.kill('SIGTERM');
    const kill = setTimeout(() => this.child?.kill('SIGKILL'), KILL_AFTER_MS);
    try {
      await this.done;
    } finally {
      clearTimeout(kill);
    }
    if (this.streamed) await waitUntilReleased(this.streamed).catch(() => undefined);
  }

  private async loop(): Promise<void> {
    let errors = 0;
    let lastFailureAt = 0;
    while (!this.stopping) {
      let failure: string;
      try {
        failure = await this.pullOnce();
      } catch (error) {
        failure = (error as Error).message;
      }
      if (this.stopping) return;
      const now = Date.now();
      if (now - lastFailureAt > ERROR_COUNT_RESET_MS) errors = 0;
      lastFailureAt = now;
      // PullRecords' "slot is already active" is not logged (flowable_core.go pullAndSyncCore): another pull holds it.
      if (!/is active for PID/.test(failure)) this.hooks.onError(failure);
      await this.sleep(this.hooks.retryDelayMs(errors));
      errors += 1;
    }
  }

  /** Runs pg_recvlogical until it ends; returns why it ended (it only ends by itself on an error). */
  private async pullOnce(): Promise<string> {
    const target = this.target();
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'peerdb-double-pull-'));
    try {
      const conninfo = await libpqConnInfo(target.settings, dir);
      if (this.stopping) return 'stopped';
      const child = spawn(
        this.binary,
        [
          `--dbname=${conninfo}`,
          '--no-password',
          '--start',
          `--slot=${target.names.slot}`,
          '--no-loop',
          '--option=proto_version=1',
          `--option=publication_names=${target.names.publication}`,
          '--file=/dev/null',
          '--status-interval=1',
          '--fsync-interval=0',
          '--verbose',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'], env: clientEnv(target.settings, dir) },
      );
      this.child = child;
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        stderr = (stderr + chunk).slice(-4000);
        if (STREAMING.test(stderr)) this.streamed = target;
      });
      const ended = new Promise<string>((resolve) => {
        child.once('error', (error) => resolve(`could not start pg_recvlogical: ${error.message}`));
        child.once('close', (code, signal) => resolve(signal ? `pg_recvlogical killed by ${signal}` : `pg_recvlogical exited with code ${code}`));
      });
      if (this.stopping) child.kill('SIGTERM');
      const how = await ended;
      this.child = undefined;
      return lastError(stderr) ?? how;
    } finally {
      await fs.promises.rm(dir, { recursive: true, force: true });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

/**
 * pg_recvlogical's last error, without its prefix: what PostgreSQL or libpq said (e.g. "unexpected termination of
 * replication stream: FATAL: terminating connection due to administrator command"). With --no-loop its very last
 * line is a bare "error: disconnected", which says nothing.
 */
function lastError(stderr: string): string | undefined {
  const errors = stderr
    .split('\n')
    .filter((line) => /^pg_recvlogical: (error|fatal): /.test(line))
    .map((line) => line.replace(/^pg_recvlogical: (error|fatal): /, '').replace(/\s+/g, ' ').trim())
    .filter((line) => line !== '' && line !== 'disconnected');
  return errors.at(-1);
}

/**
 * The pulls of the running mirrors, by mirror id. hold() and release() are idempotent; a hold while the previous
 * pull of the same mirror is still stopping starts once it stopped.
 */
export class SlotPulls {
  private readonly pulls = new Map<string, SlotPull>();
  private readonly stopping = new Map<string, Promise<void>>();

  constructor(private readonly binary: string) {}

  hold(id: string, target: () => PullTarget, hooks: PullHooks): void {
    if (this.pulls.has(id)) return;
    this.pulls.set(id, new SlotPull(this.binary, target, hooks, this.stopping.get(id) ?? Promise.resolve()));
  }

  /** Stops the mirror's pull, if any; resolves once its client is gone and PostgreSQL released the slot. */
  release(id: string): Promise<void> {
    const pull = this.pulls.get(id);
    if (!pull) return this.stopping.get(id) ?? Promise.resolve();
    this.pulls.delete(id);
    const stopped = pull.stop().catch(() => undefined).finally(() => {
      if (this.stopping.get(id) === stopped) this.stopping.delete(id);
    });
    this.stopping.set(id, stopped);
    return stopped;
  }

  async releaseAll(): Promise<void> {
    await Promise.all([...this.pulls.keys()].map((id) => this.release(id)));
    await Promise.all([...this.stopping.values()]);
  }
}

/**
 * Polls until the slot is not active (or gone): the client has gone, but its walsender releases the slot as it
 * exits, a moment later, and PostgreSQL refuses to drop an active slot.
 */
async function waitUntilReleased({ settings, names }: PullTarget): Promise<void> {
  const client = new pg.Client({ ...postgresConnection(settings), connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    for (const deadline = Date.now() + RELEASE_WAIT_MS; Date.now() < deadline; ) {
      const { rows } = await client.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [names.slot]);
      if (!rows[0]?.active) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A conninfo value, quoted for libpq. */
const quoted = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * The libpq connection string for the source, with TLS set up as the double's own connections set it up
 * (tls.ts postgresSsl, PeerDB's rules): no TLS, or TLS 1.2+ that checks nothing (skipCertVerification), the chain
 * only (an IP address without tlsHost), or the chain and the name (tlsHost, else the host), against rootCa or
 * else the CAs node trusts. Certificates go to files in `dir`; the password goes in PGPASSWORD (clientEnv).
 */
async function libpqConnInfo(settings: ConnectionSettings, dir: string): Promise<string> {
  const { host, port, user, database, tls: fields } = settings;
  const params: Record<string, string> = { host, port: String(port), user, dbname: database, connect_timeout: '10' };
  const useTls = fields.requireTls || fields.disableTls === false || fields.rootCa !== undefined;
  if (!useTls) {
    params.sslmode = 'disable';
  } else {
    params.ssl_min_protocol_version = 'TLSv1.2';
    if (fields.certificate && fields.privateKey) {
      params.sslcert = await writeFile(dir, 'client.crt', fields.certificate);
      params.sslkey = await writeFile(dir, 'client.key', fields.privateKey);
    }
    if (fields.skipCertVerification) {
      // No root certificate file (HOME is `dir`): libpq's require checks nothing.
      params.sslmode = 'require';
    } else {
      params.sslrootcert = await writeFile(dir, 'root.crt', fields.rootCa ?? tls.rootCertificates.join('\n'));
      const name = fields.tlsHost !== '' ? fields.tlsHost : host;
      if (fields.tlsHost === '' && net.isIP(host) !== 0) {
        params.sslmode = 'verify-ca';
      } else {
        params.sslmode = 'verify-full';
        // libpq checks the certificate against `host`: the name to check there, the address to dial in hostaddr.
        if (name !== host) {
          params.host = name;
          params.hostaddr = net.isIP(host) !== 0 ? host : (await dns.lookup(host)).address;
        }
      }
    }
  }
  return Object.entries(params)
    .map(([key, value]) => `${key}=${quoted(value)}`)
    .join(' ');
}

async function writeFile(dir: string, name: string, content: string): Promise<string> {
  const file = path.join(dir, name);
  await fs.promises.writeFile(file, content, { mode: 0o600 });
  return file;
}

/**
 * The client's environment: no PG* variable of this process (they would add to the connection string), HOME the
 * temporary directory (no ~/.pgpass, ~/.postgresql certificates or service file), the password in PGPASSWORD.
 */
function clientEnv(settings: ConnectionSettings, dir: string): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PG')));
  return { ...env, HOME: dir, PGPASSWORD: settings.password };
}
