import { expect } from 'vitest';
import type { RequestLogEntry } from '../peerdb-double/index.js';
import type { EchoStack } from './echo-stack.js';
import { until } from './until.js';

/** What the end-state check looks at: the stack's source database and its PeerDB double. */
export type ConvergenceTarget = Pick<EchoStack, 'sql' | 'peerdb' | 'schema'>;

export interface ConvergenceOptions {
  /** The watched schemas whose every table must be mirrored (default: the stack's own schema). */
  schemas?: readonly string[];
  /** How long to wait for the end state before reporting what is still wrong (default 90 s). */
  timeoutMs?: number;
  /**
   * Also require every mirror to be STATUS_RUNNING: a failed or paused mirror holds its tables but mirrors
   * nothing. Off by default (the fault matrix checks membership only).
   */
  requireRunning?: boolean;
  /** Called with what is still wrong at each look while waiting (for progress lines). */
  onWait?: (problems: string[]) => void;
}

interface Snapshot {
  /** `schema.table` of every table of the watched schemas, as the catalog has them. */
  tables: string[];
  /** `schema.table` -> the mirrors (the double's) that hold it. */
  holders: Record<string, string[]>;
  /** Outbox rows not handed over yet (pending, or marked failed). */
  undispatched: number;
  /** The double's mirrors that are not STATUS_RUNNING, with their status (and error). */
  notRunning: string[];
}

async function snapshot(stack: ConvergenceTarget, schemas: readonly string[]): Promise<Snapshot> {
  const { rows } = await stack.sql.query<{ name: string }>(
    "SELECT schemaname || '.' || tablename AS name FROM pg_tables WHERE schemaname = ANY($1::text[]) ORDER BY 1",
    [schemas],
  );
  const holders: Record<string, string[]> = {};
  const notRunning: string[] = [];
  for (const mirror of stack.peerdb.mirrors()) {
    for (const { sourceTableIdentifier } of mirror.tables) (holders[sourceTableIdentifier] ??= []).push(mirror.name);
    if (mirror.status !== 'STATUS_RUNNING') {
      notRunning.push(`mirror ${mirror.name} is ${mirror.status}${mirror.error === undefined ? '' : `: ${mirror.error}`}`);
    }
  }
  const pending = await stack.sql.query<{ count: string }>(
    "SELECT count(*) FROM echodb.ddl_events WHERE status IN ('pending', 'failed')",
  );
  return { tables: rows.map((r) => r.name), holders, undispatched: Number(pending.rows[0]!.count), notRunning };
}

/** Everything that is not as it should be in this snapshot, one line each; [] when converged. */
function stateProblems({ tables, holders, undispatched, notRunning }: Snapshot, requireRunning: boolean): string[] {
  const problems: string[] = [];
  if (undispatched > 0) problems.push(`${undispatched} event(s) undispatched in the outbox`);
  for (const table of tables) {
    const mirrors = holders[table] ?? [];
    if (mirrors.length === 0) problems.push(`${table} is in no mirror`);
    else if (mirrors.length > 1) problems.push(`${table} is in ${mirrors.length} mirrors: ${mirrors.join(', ')}`);
  }
  const existing = new Set(tables);
  for (const [table, mirrors] of Object.entries(holders)) {
    if (!existing.has(table)) problems.push(`${table} no longer exists but is held by ${mirrors.join(', ')}`);
  }
  if (requireRunning) problems.push(...notRunning);
  return problems;
}

/** The fields of a create or state_change request body the duplicate checks read. */
export interface MirrorEditBody {
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
 * created while it existed, a table added to a mirror that held it, a table removed from a mirror that did not,
 * a mirror dropped that was gone. A request the double never answered (the client gave up first, under latency
 * past the request timeout, or a hang) may or may not have taken effect, and might have been refused: it is no
 * duplicate itself, and what it touched is unknown until the next answered request about it, so repeating it is
 * no duplicate either.
 */
export function duplicatedRequests(requests: RequestLogEntry[]): string[] {
  const members = new Map<string, Set<string>>();
  /** Mirror names, and `mirror NUL table` memberships, that an unanswered request left unknown. */
  const unsure = new Set<string>();
  const duplicates: string[] = [];
  for (const request of requests) {
    const answered = request.status !== undefined;
    if (answered && request.status! >= 300) continue;
    // An unanswered request is never a duplicate itself: its answer might have been a refusal (404, 409).
    const duplicate = (key: string, what: string) => {
      if (answered && !unsure.has(key)) duplicates.push(what);
    };
    const settle = (key: string) => (answered ? unsure.delete(key) : unsure.add(key));
    const body = (request.body ?? {}) as MirrorEditBody;
    if (request.path === '/v1/flows/cdc/create') {
      const name = body.connectionConfigs?.flowJobName ?? '?';
      if (members.has(name)) duplicate(name, `mirror ${name} created twice`);
      const tables = (body.connectionConfigs?.tableMappings ?? []).map((m) => m.sourceTableIdentifier);
      members.set(name, new Set(tables));
      settle(name);
      for (const table of tables) settle(`${name}\0${table}`);
    } else if (request.path === '/v1/mirrors/state_change') {
      const name = body.flowJobName ?? '?';
      if (body.requestedFlowState === 'STATUS_TERMINATING' || body.requestedFlowState === 'STATUS_TERMINATED') {
        if (!members.delete(name)) duplicate(name, `mirror ${name} dropped twice`);
        settle(name);
        continue;
      }
      const tables = members.get(name) ?? new Set<string>();
      const update = body.flowConfigUpdate?.cdcFlowConfigUpdate;
      for (const { sourceTableIdentifier: table } of update?.additionalTables ?? []) {
        if (tables.has(table)) duplicate(`${name}\0${table}`, `${table} added twice to ${name}`);
        tables.add(table);
        settle(`${name}\0${table}`);
      }
      for (const { sourceTableIdentifier: table } of update?.removedTables ?? []) {
        if (!tables.delete(table)) duplicate(`${name}\0${table}`, `${table} removed twice from ${name}`);
        settle(`${name}\0${table}`);
      }
    }
  }
  return duplicates;
}

/**
 * The end state every fault must leave behind, once EchoDB has caught up: each table of the watched schemas in
 * exactly one mirror, no mirror holding a table that is gone, nothing undispatched in the outbox, and no create,
 * add or drop that PeerDB was asked to do twice (with `requireRunning`, also every mirror running). Waits up to
 * `timeoutMs` for the state to settle, then returns what is still wrong, one line per problem: [] when converged.
 * Not tied to vitest, so that scripts (bench/soak.ts) use it too.
 */
export async function convergence(stack: ConvergenceTarget, options: ConvergenceOptions = {}): Promise<string[]> {
  const { schemas = [stack.schema], timeoutMs = 90_000, requireRunning = false, onWait } = options;
  const problemsOf = (state: Snapshot) => stateProblems(state, requireRunning);
  const settled = (state: Snapshot) => {
    const problems = problemsOf(state);
    if (problems.length > 0) onWait?.(problems);
    return problems.length === 0;
  };
  let last: Snapshot;
  try {
    last = await until(() => snapshot(stack, schemas), settled, timeoutMs);
  } catch {
    last = await snapshot(stack, schemas);
  }
  // Duplicates never go away: they are looked for once, when the state has settled (or never will).
  return [...problemsOf(last), ...duplicatedRequests(stack.peerdb.requests)];
}

/** convergence() as a vitest assertion. `timeoutMs` alone (the older form) or the options. */
export async function expectConverged(
  stack: ConvergenceTarget,
  options: number | ConvergenceOptions = {},
): Promise<void> {
  const problems = await convergence(stack, typeof options === 'number' ? { timeoutMs: options } : options);
  expect(problems, 'the end state after convergence').toEqual([]);
}
