import { REQUEST_ID_PATTERN } from '../../lib/logs';

/** The header that carries an invocation's id: in from the client (kept when well formed), on to the function, and back on the answer. */
export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * The request's id: its `x-request-id` when well formed (1-128 letters, digits and `._:@/+=-`), else
 * a new one. Set on the headers in place, so the function receives it.
 */
export function takeRequestIdHeader(headers: Headers): string {
  const given = headers.get(REQUEST_ID_HEADER);
  if (given !== null && REQUEST_ID_PATTERN.test(given)) return given;
  const id = crypto.randomUUID();
  headers.set(REQUEST_ID_HEADER, id);
  return id;
}
