import pg from 'pg';
import type { Config } from '../lib/config.js';
import { postgresClientConfig } from '../lib/postgres.js';
import type { SourceQuery } from '../lib/mirrored-tables.js';
import type { LeaderLease, LeaseHolder } from './leader-election.js';

/** pg_try_advisory_lock(int, int) keys: 'ECHD' and 1, for EchoDB's leader lock. */
const LOCK = [0x45434844, 1] as const;
/** The holder's session names itself after the listener's WORKER_ID. */
const SESSION_NAME_PREFIX = 'echodb-listener:';

/**
 * The lease as a PostgreSQL advisory lock held by a session of its own: it lasts exactly as long as that session,
 * so a leader that dies or loses its connection lets go at once. Used when no Redis is configured.
 */
export class AdvisoryLockLease implements LeaderLease {
  readonly backend = 'postgres';
  private session: pg.Client | undefined;

  constructor(
    private readonly settings: Config['postgres'],
    private readonly workerId: string,
  ) {}

  async acquire(): Promise<boolean> {
    const session = await this.connect();
    const { rows } = await this.query<{ locked: boolean }>(session, 'SELECT pg_try_advisory_lock($1, $2) AS locked', LOCK);
    return rows[0]?.locked === true;
  }

  /** The lock cannot expire while the session lives; renewing checks that it still does and still holds it. */
  async renew(): Promise<boolean> {
    if (this.session === undefined) return false;
    const { rows } = await this.query<{ held: boolean }>(
      this.session,
      `SELECT EXISTS (SELECT 1 FROM pg_locks
                       WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                         AND classid = $1 AND objid = $2 AND objsubid = 2) AS held`,
      LOCK,
    );
    return rows[0]?.held === true;
  }

  async release(): Promise<void> {
    if (this.session !== undefined) await this.query(this.session, 'SELECT pg_advisory_unlock($1, $2)', LOCK);
  }

  async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    await session?.end().catch(() => undefined);
  }

  private async connect(): Promise<pg.Client> {
    if (this.session !== undefined) return this.session;
    const session = new pg.Client({
      ...postgresClientConfig(this.settings, `${SESSION_NAME_PREFIX}${this.workerId}`),
      connectionTimeoutMillis: 5000,
    });
    session.on('error', () => this.forget(session));
    await session.connect();
    this.session = session;
    return session;
  }

  private async query<R extends pg.QueryResultRow>(session: pg.Client, text: string, values: readonly number[]) {
    try {
      return await session.query<R>(text, [...values]);
    } catch (error) {
      // A broken session holds no lock any more: start from a new one next time.
      this.forget(session);
      throw error;
    }
  }

  private forget(session: pg.Client): void {
    if (this.session !== session) return;
    this.session = undefined;
    void session.end().catch(() => undefined);
  }
}

/** Who holds the advisory lock now, by the application name of the session holding it; null when nobody does. */
export async function advisoryLockHolder(query: SourceQuery): Promise<LeaseHolder | null> {
  const { rows } = await query<{ application_name: string }>(
    `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2`,
    [...LOCK],
  );
  const name = rows[0]?.application_name;
  if (name === undefined) return null;
  return { workerId: name.startsWith(SESSION_NAME_PREFIX) ? name.slice(SESSION_NAME_PREFIX.length) : name, backend: 'postgres', expiresInMs: null };
}
