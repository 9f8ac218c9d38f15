import { Context } from '@temporalio/activity';
import type { Config } from '../lib/config.js';
import { parseSourceTableIdentifier } from '../lib/workflow-safe/workflow-ids.js';
import type { PeerDbClient } from '../lib/peerdb/client.js';
import { echoDbPeers } from '../lib/peerdb/peers.js';
import type { FlowStatus } from '../lib/peerdb/types.js';
import type { MirrorOperation } from '../workflows/model.js';
import { heartbeat, type OutageObserver } from './peerdb-calls.js';
import type { sourceQueries } from './source-database.js';
import { tableFacts } from './table-readiness.js';

export interface WaitDependencies {
  config: Config;
  peerdb: PeerDbClient;
  query: ReturnType<typeof sourceQueries>;
}

/** What a PeerDB activity waits on: the mirror, the operation, the tables it concerns and the events behind it. */
export interface WaitSubject {
  mirror: string;
  operation: MirrorOperation['operation'];
  tables: string[];
  eventIds: string[];
}

/** How often a wait in SETUP or SNAPSHOT looks at its tables, at most (known causes of a wedge are cheap to see). */
const CHECK_EVERY_MS = 5000;

/**
 * One wait of a PeerDB activity for a mirror's state, with a deadline: MIRROR_STALL_TIMEOUT without progress (a
 * new state, more rows snapshotted). Shown where an operator looks while it lasts: the activity's heartbeat
 * details in the Temporal UI, and echodb.mirror_waits (read by /mirrors, `echodb status` and /metrics).
 */
export class MirrorWait implements OutageObserver {
  private readonly startedAt = Date.now();
  private progressAt = Date.now();
  private lastCheckAt = 0;
  private state: string | undefined;
  private rows: number | undefined;
  private stallReported = false;

  constructor(
    private readonly deps: WaitDependencies,
    readonly subject: WaitSubject,
  ) {}

  /** A state PeerDB answered, with the rows its initial loads copied so far when known: a change is progress. */
  async observe(state: FlowStatus, rows?: number): Promise<void> {
    const changed = state !== this.state || (rows !== undefined && rows !== this.rows);
    this.state = state;
    if (rows !== undefined) this.rows = rows;
    if (changed) {
      this.progressAt = Date.now();
      this.stallReported = false;
      await this.record(null);
    }
    heartbeat(this.describe());
  }

  /** PeerDB (or a database it needs) did not answer: the wait goes on, and says why. */
  async outage(reason: string): Promise<void> {
    if (this.state !== reason) {
      this.state = reason;
      await this.record(null);
    }
  }

  /** Time to look at the tables again: CHECK_EVERY_MS (at most a third of the stall timeout) since the last look. */
  checkDue(): boolean {
    return Date.now() - this.lastCheckAt >= Math.min(CHECK_EVERY_MS, this.deps.config.mirror.stallTimeoutMs / 3);
  }

  /** The tables were looked at now. */
  checked(): void {
    this.lastCheckAt = Date.now();
  }

  /** No progress for MIRROR_STALL_TIMEOUT. */
  get stalled(): boolean {
    return Date.now() - this.progressAt >= this.deps.config.mirror.stallTimeoutMs;
  }

  /** Seconds since the last progress. */
  get stalledSeconds(): number {
    return Math.round((Date.now() - this.progressAt) / 1000);
  }

  /**
   * Says why the mirror does not move, once per stall: the tables of the change that are gone or unusable, the
   * peers PeerDB cannot use, PeerDB's own last error for the mirror. Recorded, logged and heartbeated; returned.
   */
  async reportStall(): Promise<string> {
    const diagnosis = await this.diagnose();
    if (!this.stallReported) {
      this.stallReported = true;
      await this.record(diagnosis);
      const { mirror, operation, tables, eventIds } = this.subject;
      Context.current().log.warn('mirror wait stalled', { mirror, operation, tables, event_ids: eventIds, diagnosis });
    }
    heartbeat(`stalled: ${diagnosis}`);
    return diagnosis;
  }

  /** The wait is over: its row goes, unless the activity failed for an outage and its next attempt carries on. */
  async end(error?: unknown): Promise<void> {
    if (error !== undefined && isRetriedForOutage(error)) return;
    await this.deps
      .query('DELETE FROM echodb.mirror_waits WHERE mirror = $1', [this.subject.mirror])
      .catch(() => undefined);
  }

  private describe(): string {
    const seconds = Math.round((Date.now() - this.startedAt) / 1000);
    const rows = this.rows === undefined ? '' : `, ${this.rows} rows snapshotted`;
    return `${this.subject.operation} ${this.subject.mirror}: ${this.state} for ${seconds} s${rows}`;
  }

  /** Best effort: a wait must not fail because EchoDB's own table could not be written. */
  private async record(diagnosis: string | null): Promise<void> {
    const { mirror, operation, tables } = this.subject;
    await this.deps
      .query(
        `INSERT INTO echodb.mirror_waits (mirror, operation, tables, state, since, stalled_since, diagnosis, updated_at)
         VALUES ($1, $2, $3, $4, now(), $5, $6, now())
         ON CONFLICT (mirror) DO UPDATE SET
           state = excluded.state, tables = excluded.tables, diagnosis = excluded.diagnosis, updated_at = now(),
           stalled_since = excluded.stalled_since,
           since = CASE WHEN mirror_waits.operation = excluded.operation THEN mirror_waits.since ELSE excluded.since END,
           operation = excluded.operation`,
        [mirror, operation, tables, this.state ?? 'waiting', diagnosis === null ? null : new Date(this.progressAt), diagnosis],
      )
      .catch(() => undefined);
  }

  private async diagnose(): Promise<string> {
    const { config, peerdb, query } = this.deps;
    const { mirror, tables } = this.subject;
    const found = [`mirror ${mirror} has been ${this.state} for ${this.stalledSeconds} s without progress`];
    const refs = tables.map(parseSourceTableIdentifier);
    const facts = await tableFacts(query, config, refs).catch(() => []);
    for (const fact of facts) {
      if (!fact.mirrorable) found.push(`${fact.schema}.${fact.table} ${fact.reason}`);
    }
    for (const peer of echoDbPeers(config)) {
      const problem = await peerdb.peerProblem(peer).catch((error: unknown) => `not checked: ${(error as Error).message}`);
      if (problem) found.push(`peer ${peer.name}: ${problem}`);
    }
    const [last] = await peerdb.mirrorErrors(mirror, 1).catch(() => []);
    if (last) found.push(`PeerDB's last error for it: ${last.errorMessage}`);
    return found.join('; ');
  }
}

/** A failure Temporal retries (an open breaker), after which the same wait goes on. */
function isRetriedForOutage(error: unknown): boolean {
  return (error as { type?: unknown }).type === 'CircuitOpen';
}
