import { ServiceError, type Client } from '@temporalio/client';
import { destinationTableFor, mirrorNameFor, type NamingRules } from '../lib/naming.js';
import { mirrorWorkflowId, sourceTableIdentifier } from '../lib/workflow-safe/workflow-ids.js';
import { searchAttributes, tableSearchAttributes } from '../lib/workflow-safe/search-attributes.js';
import type { TableFilter } from '../lib/table-filter.js';
import type { DdlEventRow } from '../sql/ddl-events.js';
import { tableEventsSignal, workflowTypes } from '../workflows/definitions.js';
import type { mirrorWorkflow } from '../workflows/mirror-workflow.js';
import type { MirrorEvent, MirrorWorkflowInput, TableEvent, TableRef } from '../workflows/model.js';

export type { MirrorEvent };

export interface DispatchContext {
  client: Client;
  taskQueue: string;
  naming: NamingRules;
  destinationTemplate: string;
  /** The longest destination name ClickHouse takes in CLICKHOUSE_DB (destinationNameLimit); default 200. */
  destinationMaxLength?: number;
}


type EventFields = Pick<DdlEventRow, 'id' | 'operation' | 'schema_name' | 'table_name' | 'old_schema_name' | 'old_table_name'>;

/** A table event for `ref`, addressed to the mirror EchoDB's naming gives that table. */
export function mirrorEventFor(
  ref: TableRef,
  operation: TableEvent['operation'],
  eventId: string,
  ctx: Pick<DispatchContext, 'naming' | 'destinationTemplate' | 'destinationMaxLength'>,
): MirrorEvent {
  return {
    mirror: mirrorNameFor(ref, ctx.naming),
    event: {
      ...ref,
      source: sourceTableIdentifier(ref),
      destination: destinationTableFor(ref, ctx.destinationTemplate, ctx.destinationMaxLength),
      eventId,
      operation,
    },
  };
}

/** The table events one outbox event means: a rename is the old name leaving and the new one arriving. */
export function tableEventsOf(
  event: EventFields,
  ctx: Pick<DispatchContext, 'naming' | 'destinationTemplate' | 'destinationMaxLength'>,
) {
  const to = { schema: event.schema_name, table: event.table_name };
  if (event.operation === 'rename' && event.old_schema_name !== null && event.old_table_name !== null) {
    const from = { schema: event.old_schema_name, table: event.old_table_name };
    return [
      mirrorEventFor(from, event.operation, `${event.id}:from`, ctx),
      mirrorEventFor(to, event.operation, `${event.id}:to`, ctx),
    ];
  }
  return [mirrorEventFor(to, event.operation, event.id, ctx)];
}

/**
 * Hands a mirror's events to its workflow in one signal-with-start on the mirror's deterministic workflow ID:
 * the workflow is started if it is not running, and a duplicate delivery is deduplicated there by event id.
 */
export async function signalMirror(ctx: DispatchContext, mirror: string, events: TableEvent[]): Promise<string> {
  const workflowId = mirrorWorkflowId(mirror);
  const first = events[0];
  if (first === undefined) throw new Error(`no events for mirror ${mirror}`);
  const input: MirrorWorkflowInput = { mirror };
  const eventNumber = Number(first.eventId.split(':')[0]);
  await ctx.client.workflow.signalWithStart<typeof mirrorWorkflow, [TableEvent[]]>(workflowTypes.mirror, {
    workflowId,
    taskQueue: ctx.taskQueue,
    args: [input],
    signal: tableEventsSignal,
    signalArgs: [events],
    typedSearchAttributes: [
      ...tableSearchAttributes(mirror, first),
      ...(Number.isSafeInteger(eventNumber) ? [{ key: searchAttributes.eventId, value: eventNumber }] : []),
    ],
    memo: { startedByEvent: first.eventId },
  });
  return workflowId;
}

/**
 * What Temporal itself said, for the outbox's error column and the log: the SDK wraps a rejected call in a
 * ServiceError whose message is only a summary ("Failed to signalWithStart Workflow"); the gRPC error under it
 * carries the server's words ("Namespace default has no mapping defined for search attribute EchoDbMirror").
 */
export function temporalMessage(error: Error): string {
  const cause = error instanceof ServiceError ? (error.cause as { details?: unknown; message?: unknown } | undefined) : undefined;
  const words = typeof cause?.details === 'string' && cause.details !== '' ? cause.details : cause?.message;
  return typeof words === 'string' && words !== '' ? words : error.message;
}

/** Signals to different mirrors go out this many at a time (per-table strategy: one mirror per table). */
const SIGNAL_CONCURRENCY = 8;

/**
 * Sends each mirror its events, in order, one signal per mirror, a few mirrors at a time. `shouldStop` is asked
 * before each signal (a leader that lost its lease stops at once). Returns the workflow ID of each mirror whose
 * signal Temporal accepted, and the error of each that failed; mirrors not tried are in neither.
 */
export async function signalMirrors(
  ctx: DispatchContext,
  events: readonly MirrorEvent[],
  shouldStop: () => boolean = () => false,
): Promise<{ accepted: Map<string, string>; failed: Map<string, Error> }> {
  const byMirror = new Map<string, TableEvent[]>();
  for (const { mirror, event } of events) byMirror.set(mirror, [...(byMirror.get(mirror) ?? []), event]);
  const queue = [...byMirror];
  const accepted = new Map<string, string>();
  const failed = new Map<string, Error>();
  const sender = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined && !shouldStop(); next = queue.shift()) {
      const [mirror, mirrorEvents] = next;
      try {
        accepted.set(mirror, await signalMirror(ctx, mirror, mirrorEvents));
      } catch (error) {
        failed.set(mirror, error instanceof Error ? error : new Error(String(error)));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(SIGNAL_CONCURRENCY, queue.length) }, sender));
  return { accepted, failed };
}

export type RowOutcome =
  | { id: string; status: 'dispatched'; workflowIds: string[] }
  | { id: string; status: 'skipped'; reason: string }
  | { id: string; status: 'failed'; error: string };

/**
 * Dispatches outbox rows, in id order: each table event that passes the filter goes to its mirror's workflow;
 * a row none of whose tables is watched is skipped with the reason. A row is dispatched only when Temporal
 * accepted the signal of every mirror it concerns. Rows left untried (`shouldStop`) have no outcome.
 */
export async function dispatchRows(
  ctx: DispatchContext,
  rows: readonly EventFields[],
  filter: TableFilter,
  shouldStop?: () => boolean,
): Promise<RowOutcome[]> {
  const planned = rows.map((row) => {
    const parts = tableEventsOf(row, ctx).map((part) => ({ ...part, reason: filter(part.event) }));
    return { row, watched: parts.filter((part) => part.reason === null), reasons: parts.map((part) => part.reason) };
  });
  const { accepted, failed } = await signalMirrors(ctx, planned.flatMap((p) => p.watched), shouldStop);
  return planned.flatMap(({ row, watched, reasons }): RowOutcome[] => {
    if (watched.length === 0) return [{ id: row.id, status: 'skipped', reason: [...new Set(reasons)].join('; ') }];
    const failure = watched.map((part) => failed.get(part.mirror)).find((error) => error !== undefined);
    if (failure !== undefined) {
      return [{ id: row.id, status: 'failed', error: temporalMessage(failure) }];
    }
    const workflowIds = watched.map((part) => accepted.get(part.mirror));
    if (workflowIds.some((id) => id === undefined)) return [];
    return [{ id: row.id, status: 'dispatched', workflowIds: [...new Set(workflowIds as string[])] }];
  });
}
