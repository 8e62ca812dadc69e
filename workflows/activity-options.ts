import type { ActivityOptions, LocalActivityOptions } from '@temporalio/workflow';
import { FAILURE_TYPES } from '../lib/errors';

/**
 * Failures that retrying cannot fix: the user's input or code is wrong, or (EngineUnavailable) the
 * workflow decides itself how to wait for the engine.
 */
const NON_RETRYABLE = Object.keys(FAILURE_TYPES);

/**
 * How long a step may go without a heartbeat before Temporal takes its worker for dead and runs it
 * again on another: long steps heartbeat every 2 s whatever they print (activities/docker-helpers
 * `heartbeating`), so a worker killed mid-deploy costs seconds, not the step's whole timeout.
 */
const HEARTBEAT = '10 seconds';

/** Quick Docker or registry calls: retried a few times for an engine that restarts or a registry that blips. */
export const dockerShort: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 6, nonRetryableErrorTypes: NON_RETRYABLE },
};

/** Fetching and unpacking the source, resolving dependencies. */
export const packaging: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: HEARTBEAT,
  retry: { initialInterval: '1 second', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
};

/** docker build. */
export const imageBuild: ActivityOptions = {
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: HEARTBEAT,
  retry: { initialInterval: '1 second', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
};

/** docker push, or a whole instance start (a pull by digest included, when the image is missing). */
export const imageTransfer: ActivityOptions = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: HEARTBEAT,
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
};

/** Waiting for a new container to answer its health route (histories from before launchInstance replay it): one attempt. */
export const healthCheck: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: HEARTBEAT,
  retry: { maximumAttempts: 1 },
};

/** Talking to Temporal itself (the function entity) from an activity; a registration may wait for a container start. */
export const temporalCall: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: HEARTBEAT,
  retry: { initialInterval: '1 second', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
};

/**
 * The cold start's local activities: a whole start (a pull included, when the image is missing) and
 * its report to the entity. Retried like the steps they stand for; not when the engine is away (503).
 */
export const coldStartLocal: LocalActivityOptions = {
  startToCloseTimeout: '11 minutes',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 4, nonRetryableErrorTypes: NON_RETRYABLE },
};

/** A deploy waiting for the Docker engine to come back: how long it waits before it gives up. */
export const engineWait: ActivityOptions = {
  scheduleToCloseTimeout: '10 minutes',
  heartbeatTimeout: HEARTBEAT,
  retry: { initialInterval: '1 second', maximumInterval: '5 seconds' },
};

/**
 * One attempt of an async call: its retries are the call's own (the workflow counts attempts and
 * waits between them), so the activity runs once; a worker that dies mid-attempt costs the attempt.
 */
export const callAttempt: ActivityOptions = {
  startToCloseTimeout: '20 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 1 },
};

/** Delivering a call's result to its callback URL: retried on its own, for up to about an hour. */
export const callbackDelivery: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 16 },
};
