import {
  isGrpcServiceError,
  ServiceError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { codeForFailureType, type ErrorCode, PlatError } from '../lib/errors';

/** The innermost failure of a workflow or update error: the one whose message the user should read. */
export function rootCause(error: unknown): unknown {
  let cause = error;
  while (
    (cause instanceof WorkflowFailedError || cause instanceof WorkflowUpdateFailedError || cause instanceof TemporalFailure) &&
    cause.cause
  ) {
    cause = cause.cause;
  }
  return cause;
}

/**
 * gRPC statuses that say Temporal could not be reached or did not answer in time, not that it
 * refused: CANCELLED (1), DEADLINE_EXCEEDED (4), UNAVAILABLE (14).
 */
const UNREACHABLE = new Set<number>([1, 4, 14]);

/** Whether a client error means Temporal could not be reached, judged from its gRPC status. */
export function isTemporalUnreachable(error: unknown): boolean {
  for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) {
    if (isGrpcServiceError(e)) return UNREACHABLE.has(e.code);
    if (!(e instanceof ServiceError) && !(e instanceof Error)) return false;
  }
  return false;
}

/** Turns a Temporal client error into a PlatError the gateway can answer with; the original stays its cause. */
export function toPlatError(error: unknown, fallback: ErrorCode, notFoundMessage?: string): PlatError {
  if (error instanceof PlatError) return error;
  if (error instanceof WorkflowNotFoundError && notFoundMessage) return new PlatError('FUNCTION_NOT_FOUND', notFoundMessage);
  if (isTemporalUnreachable(error)) {
    return new PlatError('PLATFORM_UNAVAILABLE', 'Temporal is not reachable; warm functions still answer. Try again once it is back.', {
      cause: error,
    });
  }
  const cause = rootCause(error);
  if (cause instanceof ApplicationFailure) {
    return new PlatError(codeForFailureType(cause.type) ?? fallback, cause.message, { cause: error });
  }
  const message = cause instanceof Error ? cause.message : String(cause);
  return new PlatError(fallback, message, { cause: error });
}
