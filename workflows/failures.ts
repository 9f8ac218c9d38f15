import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure } from '@temporalio/workflow';

/**
 * A failure in its own words, for records and logs: an activity's or child workflow's cause rather than Temporal's
 * wrapping, led by its type when that says more than `Error` (`MirrorStalled: ...`).
 */
export function failureText(error: unknown): string {
  const cause = (error instanceof ActivityFailure || error instanceof ChildWorkflowFailure) && error.cause ? error.cause : error;
  if (!(cause instanceof Error)) return String(cause);
  const type = cause instanceof ApplicationFailure ? cause.type : undefined;
  return type && type !== 'Error' ? `${type}: ${cause.message}` : cause.message;
}

/** An activity failed with an error of this class (its failure type is the class name). */
export function isFailureOfType(error: unknown, type: { name: string }): boolean {
  return error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === type.name;
}
