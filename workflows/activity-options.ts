import type { ActivityOptions } from '@temporalio/workflow';
import { FAILURE_TYPES } from '../lib/errors';

/** Failures that retrying cannot fix: the user's input or code is wrong. */
const NON_RETRYABLE = Object.keys(FAILURE_TYPES);

/** Quick Docker or registry calls: retried a few times for an engine that restarts or a registry that blips. */
export const dockerShort: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 6, nonRetryableErrorTypes: NON_RETRYABLE },
};

/** Fetching and unpacking the source, resolving dependencies. */
export const packaging: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
};

/** docker build: long, heartbeats on each line of output. */
export const imageBuild: ActivityOptions = {
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '2 seconds', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
};

/** docker push, or pull by digest on a cold start. */
export const imageTransfer: ActivityOptions = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
};

/** Waiting for a new container to answer its health route: the activity polls, so one attempt. */
export const healthCheck: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 1 },
};

/** Talking to Temporal itself (the function entity) from an activity. */
export const temporalCall: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
};
