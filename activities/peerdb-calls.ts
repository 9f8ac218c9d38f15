import { Context } from '@temporalio/activity';
import { isTransient } from '../lib/peerdb/client.js';
import { withBreakerAwareRetries } from './temporal-errors.js';

/** How often a waiting activity first asks PeerDB for the mirror's state; it backs off to MAX_POLL_MS. */
export const POLL_MS = 250;
export const MAX_POLL_MS = 1000;
/**
 * How often a PeerDB activity heartbeats while it runs, whatever it waits for (a PeerDB call may take up to
 * PEERDB_REQUEST_TIMEOUT, a drop up to PEERDB_DROP_TIMEOUT): the workflows' heartbeat timeout only has to outlast
 * this, so the activities of a worker that died are handed to another within seconds.
 */
const HEARTBEAT_EVERY_MS = 1000;
/** The longest pause between two tries of a PeerDB call that failed for an outage (503, timeout, refused). */
const MAX_OUTAGE_PAUSE_MS = 5000;

/** The last details each running activity heartbeated, which the interval heartbeat repeats. */
const lastDetails = new WeakMap<Context, unknown>();

/** Heartbeats the current activity with these details, and keeps them for the interval heartbeat. */
export function heartbeat(details: string): void {
  const context = Context.current();
  lastDetails.set(context, details);
  context.heartbeat(details);
}

/**
 * Runs a PeerDB activity's body (breaker-aware), heartbeating every HEARTBEAT_EVERY_MS until it ends, with the
 * last details the body heartbeated (at first, the previous attempt's), so the Temporal UI keeps showing what it
 * waits for.
 */
export async function heartbeating<T>(work: () => Promise<T>): Promise<T> {
  const context = Context.current();
  if (context.info.heartbeatDetails !== undefined) lastDetails.set(context, context.info.heartbeatDetails);
  const timer = setInterval(() => context.heartbeat(lastDetails.get(context)), HEARTBEAT_EVERY_MS);
  try {
    return await withBreakerAwareRetries(work);
  } finally {
    clearInterval(timer);
  }
}

/** Something that wants to know about each transient failure (a mirror wait, to say why it waits). */
export interface OutageObserver {
  outage(reason: string): Promise<void>;
}

/**
 * Rethrows anything but a transient failure (PeerDB, or a database it needs, away); a transient one is
 * heartbeated and told to `observer`, so that the Temporal UI and the mirror's wait show why the activity waits.
 */
export async function noteTransient(error: unknown, observer?: OutageObserver): Promise<void> {
  if (!isTransient(error)) throw error;
  const reason = `PeerDB unavailable: ${(error as Error).message}`;
  heartbeat(reason);
  await observer?.outage(reason);
}

/**
 * One PeerDB call, tried again in place (heartbeating, backing off to MAX_OUTAGE_PAUSE_MS) while it fails
 * transiently. A long wait for a mirror's state must not be thrown away, and a half-done edit must not wait out
 * Temporal's retry backoff, because one poll among hundreds met a 503. A lasting outage of PeerDB opens the
 * breaker, whose CircuitOpen fails the attempt (withBreakerAwareRetries schedules the next one); other errors fail
 * it too.
 */
export async function persistently<T>(call: () => Promise<T>, observer?: OutageObserver): Promise<T> {
  for (let pause = POLL_MS; ; pause = Math.min(pause * 2, MAX_OUTAGE_PAUSE_MS)) {
    try {
      return await call();
    } catch (error) {
      await noteTransient(error, observer);
      await Context.current().sleep(pause);
    }
  }
}

/** Sends one request; false (heartbeating) when it failed transiently, so that the caller looks again first. */
export async function sentOrTransient(call: () => Promise<unknown>, observer?: OutageObserver): Promise<boolean> {
  try {
    await call();
    return true;
  } catch (error) {
    await noteTransient(error, observer);
    return false;
  }
}
