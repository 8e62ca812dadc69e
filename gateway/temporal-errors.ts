import { WorkflowFailedError, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { codeForFailureType, type ErrorCode, PlatError } from '../lib/errors';

/** The innermost failure of a workflow or update error: the one whose message the user should read. */
function rootCause(error: unknown): unknown {
  let cause = error;
  while (
    (cause instanceof WorkflowFailedError || cause instanceof WorkflowUpdateFailedError || cause instanceof TemporalFailure) &&
    cause.cause
  ) {
    cause = cause.cause;
  }
  return cause;
}

/** Turns a Temporal client error into a PlatError the gateway can answer with. */
export function toPlatError(error: unknown, fallback: ErrorCode, notFoundMessage?: string): PlatError {
  if (error instanceof PlatError) return error;
  if (error instanceof WorkflowNotFoundError && notFoundMessage) return new PlatError('FUNCTION_NOT_FOUND', notFoundMessage);
  const cause = rootCause(error);
  if (cause instanceof ApplicationFailure) {
    return new PlatError(codeForFailureType(cause.type) ?? fallback, cause.message);
  }
  const message = cause instanceof Error ? cause.message : String(cause);
  if (/connect|UNAVAILABLE|ECONNREFUSED|deadline/i.test(message)) {
    return new PlatError('PLATFORM_UNAVAILABLE', `Temporal is not reachable: ${message}`);
  }
  return new PlatError(fallback, message);
}
