import type { Client } from '@temporalio/client';
import {
  destinationTableFor,
  mirrorNameFor,
  mirrorWorkflowId,
  sourceTableIdentifier,
  type NamingRules,
} from '../lib/naming.js';
import { searchAttributes, tableSearchAttributes } from '../lib/search-attributes.js';
import type { DdlEventRow } from '../sql/ddl-events.js';
import type { MirrorWorkflowInput, TableEvent, TableRef } from '../workflows/model.js';

export interface DispatchContext {
  client: Client;
  taskQueue: string;
  naming: NamingRules;
  destinationTemplate: string;
}

export interface Dispatched {
  workflowId: string;
  mirror: string;
  event: TableEvent;
}

type EventFields = Pick<DdlEventRow, 'id' | 'operation' | 'schema_name' | 'table_name' | 'old_schema_name' | 'old_table_name'>;

/** The table events one outbox event means: a rename is the old name leaving and the new one arriving. */
export function tableEventsOf(event: EventFields, ctx: Pick<DispatchContext, 'naming' | 'destinationTemplate'>) {
  const parts: { ref: TableRef; suffix: string }[] = [];
  if (event.operation === 'rename' && event.old_schema_name !== null && event.old_table_name !== null) {
    parts.push({ ref: { schema: event.old_schema_name, table: event.old_table_name }, suffix: ':from' });
    parts.push({ ref: { schema: event.schema_name, table: event.table_name }, suffix: ':to' });
  } else {
    parts.push({ ref: { schema: event.schema_name, table: event.table_name }, suffix: '' });
  }
  return parts.map(({ ref, suffix }) => ({
    mirror: mirrorNameFor(ref, ctx.naming),
    event: {
      ...ref,
      source: sourceTableIdentifier(ref),
      destination: destinationTableFor(ref, ctx.destinationTemplate),
      eventId: `${event.id}${suffix}`,
      operation: event.operation,
    } satisfies TableEvent,
  }));
}

/**
 * Hands one outbox event to the workflow of each mirror it concerns, with signal-with-start on the mirror's
 * deterministic workflow ID: the workflow is started if it is not running, and a duplicate delivery is
 * deduplicated there by event id.
 */
export async function dispatchDdlEvent(ctx: DispatchContext, event: EventFields): Promise<Dispatched[]> {
  const dispatched: Dispatched[] = [];
  for (const { mirror, event: tableEvent } of tableEventsOf(event, ctx)) {
    const workflowId = mirrorWorkflowId(mirror);
    const input: MirrorWorkflowInput = { mirror };
    await ctx.client.workflow.signalWithStart('mirrorWorkflow', {
      workflowId,
      taskQueue: ctx.taskQueue,
      args: [input],
      signal: 'tableEvent',
      signalArgs: [tableEvent],
      typedSearchAttributes: [
        ...tableSearchAttributes(mirror, tableEvent),
        { key: searchAttributes.eventId, value: Number(event.id) },
      ],
      memo: { startedByEvent: tableEvent.eventId },
    });
    dispatched.push({ workflowId, mirror, event: tableEvent });
  }
  return dispatched;
}
