/** What the gateway (accepting a call) and the worker (running it) agree on about async calls. */

/** Request and answer bodies of async calls, at most (they are kept in the registry, not in the history). */
export const CALL_BODY_LIMIT = 32 * 1024 * 1024;

/** The registry tags an async call's bodies are kept under, in its function's repository. */
export function callTag(callId: string, part: 'request' | 'answer'): string {
  // A tag takes letters, digits, `_`, `.` and `-`: a scheduled run's time loses its colons.
  return `call-${callId.slice(callId.lastIndexOf('.') + 1).replaceAll(':', '')}-${part}`;
}
