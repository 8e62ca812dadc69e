import type { Instance } from './types';

/**
 * What a worker tells the gateways on its host, the moment it knows: a stream of JSON lines on a
 * local socket (settings.eventsSocket). Gateways act on it at once and fall back to re-reading the
 * entities (every ROUTE_REVALIDATE_MS) whenever the stream is down, so a missed event costs
 * seconds, never a wrong answer: the runtimes' instance check stays the last word.
 */
export type PlatformEvent =
  /**
   * The first line of every subscription: what happened before it is unknown, so re-read
   * everything. `maintenance` tells whether the registry's garbage is being collected right now.
   */
  | { type: 'hello'; maintenance?: boolean }
  /**
   * The registry's garbage collector runs (or has ended): it would delete a blob uploaded while it
   * runs, so gateways hold new deploy uploads meanwhile.
   */
  | { type: 'registry-maintenance'; active: boolean }
  /** A container that died, was killed or was removed: drop every route to it. */
  | {
      type: 'instance-gone';
      name: string;
      containerId: string;
      reason: string /** When it died, ms since the epoch (the engine's clock, this host's). */;
      at: number;
    }
  /**
   * A cold start's container answers its health route (`start` is the cold-start workflow's id). The
   * gateways waiting for that start route to it at once, before the entity has accepted it and the
   * workflow's result has come back (two Temporal round trips); a start the entity then refuses is
   * drained, not cut, so what was routed to it meanwhile is answered.
   */
  | { type: 'instance-ready'; start: string; instance: Instance }
  /**
   * The platform is about to stop a container (idle for stopAfter, or replaced by a deploy): no new
   * request goes to it; `instance-gone` follows when it is gone.
   */
  | { type: 'instance-retired'; name: string; containerId: string }
  /** A function's serving version changed (a deploy switched): route afresh. */
  | { type: 'function-changed'; name: string }
  /** The idle rules paused a container: a request must resume it first (resumePath). */
  | { type: 'instance-paused'; name: string; containerId: string }
  | { type: 'instance-resumed'; name: string; containerId: string }
  /**
   * An async call's attempt ended: `retry` when another follows, else how the call ended. Gateways
   * count them (plat_calls_total, plat_call_attempts_total).
   */
  | { type: 'call-attempt'; name: string; attempt: number; status?: number; outcome: CallAttemptOutcome };

export type CallAttemptOutcome = 'succeeded' | 'retry' | 'failed';

export interface EventPublisher {
  publish(event: PlatformEvent): void;
}

export const EVENTS_PATH = '/events';

/**
 * The worker's other route on the same socket: `POST` resumes a paused container and answers once
 * it runs, so a request to a paused function waits milliseconds, not a trip through Temporal.
 */
export function resumePath(containerId: string): string {
  return `/instances/${containerId}/resume`;
}

/** What a container uses, read from the engine when asked (`plat describe --usage`). */
export interface InstanceUsage {
  memoryBytes: number;
  memoryLimitBytes: number;
  /** Share of one CPU over the engine's last sampling interval (about a second): 100 is one core. */
  cpuPercent: number;
}

/** The worker's route on the events socket for what a container uses now. */
export function usagePath(containerId: string): string {
  return `/instances/${containerId}/usage`;
}
