import { expect } from 'vitest';
import type { RequestLogEntry } from '../peerdb-double/index.js';
import type { EchoStack } from './echo-stack.js';
import { until } from './until.js';

interface Snapshot {
  /** `schema.table` of every table of the watched schema, as the catalog has them. */
  tables: string[];
  /** `schema.table` -> the mirrors (the double's) that hold it. */
  holders: Record<string, string[]>;
  pending: number;
}

async function snapshot(stack: EchoStack): Promise<Snapshot> {
  const { rows } = await stack.sql.query<{ name: string }>(
    "SELECT schemaname || '.' || tablename AS name FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
    [stack.schema],
  );
  const holders: Record<string, string[]> = {};
  for (const mirror of stack.peerdb.mirrors()) {
    for (const { sourceTableIdentifier } of mirror.tables) (holders[sourceTableIdentifier] ??= []).push(mirror.name);
  }
  const pending = await stack.sql.query<{ count: string }>("SELECT count(*) FROM echodb.ddl_events WHERE status = 'pending'");
  return { tables: rows.map((r) => r.name), holders, pending: Number(pending.rows[0]!.count) };
}

const converged = ({ tables, holders, pending }: Snapshot) =>
  pending === 0 &&
  tables.every((table) => holders[table]?.length === 1) &&
  Object.keys(holders).every((table) => tables.includes(table));

interface MirrorEditBody {
  flowJobName?: string;
  requestedFlowState?: string;
  connectionConfigs?: { flowJobName?: string; tableMappings?: { sourceTableIdentifier: string }[] };
  flowConfigUpdate?: {
    cdcFlowConfigUpdate?: {
      additionalTables?: { sourceTableIdentifier: string }[];
      removedTables?: { sourceTableIdentifier: string }[];
    };
  };
}

/**
 * Replays the double's successful requests and lists every one that repeated what was already done: a mirror
 * created while it existed, a table added to a mirror that held it, a table removed from a mirror that did not.
 */
export function duplicatedRequests(requests: RequestLogEntry[]): string[] {
  const members = new Map<string, Set<string>>();
  const duplicates: string[] = [];
  for (const request of requests) {
    if (request.status === undefined || request.status >= 300) continue;
    const body = (request.body ?? {}) as MirrorEditBody;
    if (request.path === '/v1/flows/cdc/create') {
      const name = body.connectionConfigs?.flowJobName ?? '?';
      if (members.has(name)) duplicates.push(`mirror ${name} created twice`);
      members.set(name, new Set((body.connectionConfigs?.tableMappings ?? []).map((m) => m.sourceTableIdentifier)));
    } else if (request.path === '/v1/mirrors/state_change') {
      const name = body.flowJobName ?? '?';
      if (body.requestedFlowState === 'STATUS_TERMINATING' || body.requestedFlowState === 'STATUS_TERMINATED') {
        if (!members.delete(name)) duplicates.push(`mirror ${name} dropped twice`);
        continue;
      }
      const tables = members.get(name) ?? new Set<string>();
      const update = body.flowConfigUpdate?.cdcFlowConfigUpdate;
      for (const { sourceTableIdentifier: table } of update?.additionalTables ?? []) {
        if (tables.has(table)) duplicates.push(`${table} added twice to ${name}`);
        tables.add(table);
      }
      for (const { sourceTableIdentifier: table } of update?.removedTables ?? []) {
        if (!tables.delete(table)) duplicates.push(`${table} removed twice from ${name}`);
      }
    }
  }
  return duplicates;
}

/**
 * The end state every fault must leave behind, once EchoDB has caught up: each table of the watched schema in
 * exactly one mirror, no mirror holding a table that is gone, nothing pending in the outbox, and no create, add or
 * drop that PeerDB was asked to do twice.
 */
export async function expectConverged(stack: EchoStack, timeoutMs = 90_000): Promise<void> {
  let last: Snapshot | undefined;
  try {
    last = await until(() => snapshot(stack), converged, timeoutMs);
  } catch {
    last = await snapshot(stack);
  }
  const { tables, holders, pending } = last;
  expect(pending, 'events pending in the outbox').toBe(0);
  expect(tables.filter((table) => holders[table]?.length !== 1), 'tables not in exactly one mirror').toEqual([]);
  expect(Object.keys(holders).filter((table) => !tables.includes(table)), 'mirrored tables that no longer exist').toEqual([]);
  expect(duplicatedRequests(stack.peerdb.requests)).toEqual([]);
}
