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
  /** `schema.table` -> why EchoDB left it out of every mirror (echodb.unmirrored_tables). */
  unmirrored: Record<string, string>;
  /** Replication slots and publications named like PeerDB's (peerflow_*) in the source database. */
  slots: string[];
  publications: string[];
  /** `schema.table` -> the mirrors (the double's) that hold it. */
  holders: Record<string, string[]>;
  /** Outbox rows not handed over yet (pending, or marked failed). */
  undispatched: number;
  /** The double's mirrors that are not STATUS_RUNNING, with their status (and error). */
  notRunning: string[];
  /** The double's mirrors, with the slot and publication each should hold. */
  mirrors: { name: string; slotName: string; publicationName: string; status: string }[];
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
    "SELECT count(*) FROM echodb.ddl_events WHERE status = 'pending'",
  );
  const unmirrored = await stack.sql.query<{ name: string; reason: string }>(
    "SELECT schema_name || '.' || table_name AS name, reason FROM echodb.unmirrored_tables WHERE schema_name = ANY($1::text[])",
    [schemas],
  );
  const replication = await stack.sql.query<{ kind: 'slot' | 'publication'; name: string }>(
    `SELECT 'slot' AS kind, slot_name AS name FROM pg_replication_slots
      WHERE database = current_database() AND slot_name LIKE 'peerflow\\_slot\\_%'
     UNION ALL
     SELECT 'publication', pubname FROM pg_publication WHERE pubname LIKE 'peerflow\\_pub\\_%'`,
  );
  return {
    tables: rows.map((r) => r.name),
    unmirrored: Object.fromEntries(unmirrored.rows.map((row) => [row.name, row.reason])),
    slots: replication.rows.filter((row) => row.kind === 'slot').map((row) => row.name),
    publications: replication.rows.filter((row) => row.kind === 'publication').map((row) => row.name),
    holders,
    undispatched: Number(pending.rows[0]!.count),
    notRunning,
    mirrors: stack.peerdb.mirrors().map(({ name, slotName, publicationName, status }) => ({ name, slotName, publicationName, status })),
  };
}

/** Everything that is not as it should be in this snapshot, one line each; [] when converged. */
function stateProblems(snapshot: Snapshot, requireRunning: boolean): string[] {
  const { tables, unmirrored, holders, undispatched, notRunning } = snapshot;
  const problems: string[] = [];
  if (undispatched > 0) problems.push(`${undispatched} event(s) undispatched in the outbox`);
  for (const table of tables) {
    const mirrors = holders[table] ?? [];
    const leftOut = unmirrored[table];
    if (leftOut !== undefined && mirrors.length > 0) problems.push(`${table} is recorded as not mirrored (${leftOut}) but is in ${mirrors.join(', ')}`);
    // Recorded while it was away (moved, renamed): the event of its return is still being applied.
    else if (leftOut === 'does not exist') problems.push(`${table} exists but is recorded as not mirrored because it does not exist`);
    else if (mirrors.length === 0 && leftOut === undefined) problems.push(`${table} is in no mirror`);
    else if (mirrors.length > 1) problems.push(`${table} is in ${mirrors.length} mirrors: ${mirrors.join(', ')}`);
  }
  problems.push(...replicationProblems(snapshot));
  const existing = new Set(tables);
  for (const [table, mirrors] of Object.entries(holders)) {
    if (!existing.has(table)) problems.push(`${table} no longer exists but is held by ${mirrors.join(', ')}`);
  }
  if (requireRunning) problems.push(...notRunning);
  return problems;
}

/**
 * PeerDB's slots and publications in the source database against its mirrors: one of a mirror that is gone is a
 * leak (its slot keeps WAL for ever); a running mirror without its own has lost it.
 */
function replicationProblems({ slots, publications, mirrors }: Snapshot): string[] {
  const problems: string[] = [];
  const slotsOf = new Set(mirrors.map((m) => m.slotName));
  const publicationsOf = new Set(mirrors.map((m) => m.publicationName));
  for (const slot of slots) if (!slotsOf.has(slot)) problems.push(`replication slot ${slot} is left from a mirror that is gone`);
  for (const publication of publications) {
    if (!publicationsOf.has(publication)) problems.push(`publication ${publication} is left from a mirror that is gone`);
  }
  for (const mirror of mirrors.filter((m) => m.status === 'STATUS_RUNNING')) {
    if (!slots.includes(mirror.slotName)) problems.push(`mirror ${mirror.name} runs without its slot ${mirror.slotName}`);
    if (!publications.includes(mirror.publicationName)) problems.push(`mirror ${mirror.name} runs without its publication ${mirror.publicationName}`);
  }
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
    } else if (request.path === '/v1/flows/cdc/cancel_table_addition') {
      // PeerDB keeps the tables it had and the added ones already snapshotted: which, the log does not say.
      const name = body.flowJobName ?? '?';
      const replicating = (request.body as { currentlyReplicatingTables?: { sourceTableIdentifier: string }[] } | undefined)
        ?.currentlyReplicatingTables ?? [];
      for (const { sourceTableIdentifier: table } of replicating) {
        members.get(name)?.delete(table);
        unsure.add(`${name}\0${table}`);
      }
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
 * exactly one mirror, or in none with its reason recorded (echodb.unmirrored_tables), no mirror holding a table
 * that is gone, no replication slot or publication left from a mirror that is gone, nothing undispatched in the
 * outbox, and no create, add or drop that PeerDB was asked to do twice (with `requireRunning`, also every mirror
 * running). Waits up to
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
