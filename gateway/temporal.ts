import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import type { Settings } from '../lib/settings';

/** How long a read of the control plane (describe, list, status) may take before the gateway answers 503. */
export const CONTROL_READ_MS = 10_000;

/**
 * The gateway's Temporal client, tuned for answering HTTP requests while Temporal may be away:
 * - lazy, so the gateway starts (and serves warm functions) while Temporal is down;
 * - a call that finds Temporal unreachable is retried for about a second, not the SDK's default of
 *   about 20 s, and then answered 503 PLATFORM_UNAVAILABLE;
 * - the channel tries to reconnect every quarter of a second at most (a refused connection costs
 *   nothing), well within that second, so the first request after Temporal is back finds it,
 *   instead of waiting out gRPC's exponential reconnect backoff (up to 2 min).
 */
export function connectTemporal(settings: Settings): { connection: Connection; client: Client } {
  const connection = Connection.lazy({
    address: settings.temporalAddress,
    interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 4 }))],
    channelArgs: {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 250,
    },
  });
  return { connection, client: new Client({ connection, namespace: settings.temporalNamespace }) };
}

/** Runs Temporal calls with a deadline, so a missing worker or a stalled server costs a bounded wait. */
export function within<T>(temporal: Client, ms: number, calls: () => Promise<T>): Promise<T> {
  return temporal.withDeadline(Date.now() + ms, calls);
}
