import type { RegistryApi } from './registry-api';

/** What the gateway (accepting a call) and the worker (running it) agree on about async calls. */

/** Request and answer bodies of async calls, at most (they are kept in the registry, not in the history). */
export const CALL_BODY_LIMIT = 32 * 1024 * 1024;

/** The repositories of functions in the registry (lib/names.ts repositoryPath). */
const FUNCTION_REPOSITORY = 'plat/fn-';

/**
 * The registry tag an async call's body is kept under, in its function's repository:
 * `call-<accepted, yyyymmddhhmmss>-<id's hex and run time>-<part>`. The time lets the collector
 * expire bodies by their tags alone (expireCallBodies); a tag takes letters, digits, `_`, `.` and
 * `-`, so a scheduled run's time loses its colons.
 */
export function callTag(callId: string, part: 'request' | 'answer', acceptedAt: string): string {
  const at = acceptedAt.replace(/\.\d+Z$/, 'Z').replace(/[-:TZ]/g, '');
  return `call-${at}-${callId.slice(callId.lastIndexOf('.') + 1).replaceAll(':', '')}-${part}`;
}

/** When the call whose body a tag keeps was accepted (ms since the epoch); undefined for any other tag. */
export function callTagTime(tag: string): number | undefined {
  const match = /^call-(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})-/.exec(tag);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s] = match;
  return Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
}

/**
 * Untags the bodies of calls accepted longer than `retentionMs` ago, in every function's repository
 * (or in `repositories`), so their blobs go with the collection that follows. Returns how many.
 */
export async function expireCallBodies(
  registry: RegistryApi,
  retentionMs: number,
  { now = Date.now(), repositories }: { now?: number; repositories?: string[] } = {},
): Promise<number> {
  let expired = 0;
  for (const repository of repositories ?? (await registry.catalog())) {
    if (!repository.startsWith(FUNCTION_REPOSITORY)) continue;
    for (const tag of await registry.tags(repository)) {
      const at = callTagTime(tag);
      if (at === undefined || now - at <= retentionMs) continue;
      await registry.untag(repository, tag);
      expired++;
    }
  }
  return expired;
}
