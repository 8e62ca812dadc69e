import { EVENTS_PATH, type InstanceUsage, type PlatformEvent, resumePath, usagePath } from '../../lib/events';
import { lines } from '../../lib/ndjson';

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 2000;
const IDLE_MS = 30_000;

/** Asks the worker on this host to resume a paused container; resolves once it runs again. */
export async function resumeContainer(socket: string, containerId: string): Promise<void> {
  const response = await fetch(`http://localhost${resumePath(containerId)}`, {
    method: 'POST',
    unix: socket,
    signal: AbortSignal.timeout(RESUME_MS),
  });
  if (!response.ok) throw new Error(`the worker could not resume the container: HTTP ${response.status} ${await response.text()}`);
}

/** What a container uses now, as the worker on this host reads it from the engine; undefined when it cannot tell (the container is gone). */
export async function instanceUsage(socket: string, containerId: string): Promise<InstanceUsage | undefined> {
  try {
    const response = await fetch(`http://localhost${usagePath(containerId)}`, { unix: socket, signal: AbortSignal.timeout(USAGE_MS) });
    return response.ok ? ((await response.json()) as InstanceUsage) : undefined;
  } catch {
    return undefined;
  }
}

/** The engine samples a container's CPU over about a second before it answers. */
const USAGE_MS = 5000;

/** Longer than an unpause ever takes; a worker that does not answer in that time is taken for away. */
const RESUME_MS = 5000;

/**
 * Follows the worker's events on this host (see lib/events.ts) for as long as `signal` allows,
 * reconnecting whenever the worker restarts. While it is not connected, the gateway still re-reads
 * its routes from the entities every few seconds; each (re)connection starts with `hello`, which
 * makes it re-read them at once.
 */
export async function followEvents(socket: string, onEvent: (event: PlatformEvent) => void, signal: AbortSignal): Promise<void> {
  let retry = RETRY_MIN_MS;
  while (!signal.aborted) {
    try {
      // The worker writes a line at least every 10 s: a stream quiet for longer than this is a worker that hung.
      const response = await fetch(`http://localhost${EVENTS_PATH}`, { unix: socket, signal, timeout: IDLE_MS });
      if (response.ok && response.body) {
        retry = RETRY_MIN_MS;
        for await (const line of lines(response.body)) {
          if (line) onEvent(JSON.parse(line) as PlatformEvent);
        }
      }
    } catch {
      // No worker on this host yet, or it went away: try again shortly.
    }
    if (signal.aborted) return;
    await Bun.sleep(retry);
    retry = Math.min(retry * 2, RETRY_MAX_MS);
  }
}
