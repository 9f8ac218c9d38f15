import type { ClickHouseClient } from '@clickhouse/client';
import type { Client } from '@temporalio/client';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { readinessQuery } from '../lib/clickhouse-sql.js';
import type { PeerDbClient } from '../lib/peerdb/client.js';
import { checkSearchAttributes, describeSearchAttributeProblems } from '../lib/search-attribute-registration.js';
import { tlsHint } from '../lib/tls.js';
import { readMigrations, usableSchemaVersion } from '../sql/migrations.js';

export interface ReadinessDependencies {
  postgres: pg.Pool;
  clickhouse: ClickHouseClient;
  temporal: Client;
  peerdb: PeerDbClient;
  /** null when leader election does not use Redis: then it is not checked. */
  redis: Redis | null;
}

export type CheckResult = { ok: true; ms: number } | { ok: false; ms: number; error: string };

export interface Readiness {
  ready: boolean;
  checks: Record<string, CheckResult>;
  /** `<dependency>: <why>` for each failed check. */
  failed: string[];
}

/** How long one dependency may take to answer. */
const CHECK_TIMEOUT_MS = 5_000;

async function timed(work: () => Promise<void>): Promise<CheckResult> {
  const startedAt = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      work(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { ok: true, ms: Math.round(performance.now() - startedAt) };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, ms: Math.round(performance.now() - startedAt), error: message || String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** A check whose TLS failure also says which variables to look at (lib/tls.ts tlsHint). */
function withTlsHint(side: 'POSTGRES' | 'CLICKHOUSE', check: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await check();
    } catch (error) {
      const hint = tlsHint(error, side);
      if (hint === '') throw error;
      throw new Error(`${error instanceof Error ? error.message : String(error)}${hint}`, { cause: error });
    }
  };
}

/**
 * Asks every dependency for a real answer, all at once: PostgreSQL (with EchoDB's tables at this release's
 * migration), ClickHouse (a query: its ping succeeds even with a wrong password), Temporal, Redis when leader
 * election uses it, and PeerDB's Flow API.
 */
export async function checkReadiness(deps: ReadinessDependencies): Promise<Readiness> {
  const migrations = readMigrations();
  const expected = Math.max(...migrations.map((m) => m.version));
  const checks: Record<string, () => Promise<void>> = {
    postgres: withTlsHint('POSTGRES', async () => {
      const version = await usableSchemaVersion(deps.postgres, migrations);
      if (version < expected) throw new Error(`EchoDB's tables are at migration ${version}, this release needs ${expected}: run echodb setup`);
    }),
    clickhouse: withTlsHint('CLICKHOUSE', async () => {
      await (await deps.clickhouse.query({ query: readinessQuery(), format: 'JSONEachRow' })).json();
    }),
    temporal: async () => {
      const { connection } = deps.temporal;
      const { namespace } = deps.temporal.options;
      // Reachable, and with EchoDB's search attributes: without them every workflow start fails.
      const problem = await connection.withDeadline(Date.now() + CHECK_TIMEOUT_MS, async () => {
        await connection.workflowService.getSystemInfo({});
        return describeSearchAttributeProblems(namespace, await checkSearchAttributes(connection, namespace));
      });
      if (problem) throw new Error(problem);
    },
    ...(deps.redis && {
      redis: async () => {
        const redis = deps.redis!;
        // Connected on first use; later, while ioredis reconnects, commands fail at once (no offline queue).
        if (redis.status === 'wait') await redis.connect();
        await redis.ping();
      },
    }),
    peerdb: async () => {
      await deps.peerdb.listMirrors();
    },
  };
  const results = Object.fromEntries(
    await Promise.all(Object.entries(checks).map(async ([name, check]) => [name, await timed(check)] as const)),
  );
  const failed = Object.entries(results).flatMap(([name, result]) => (result.ok ? [] : [`${name}: ${result.error}`]));
  return { ready: failed.length === 0, checks: results, failed };
}
