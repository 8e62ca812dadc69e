import { PlatError } from '../lib/errors';
import { LIMITS } from '../lib/settings';

/**
 * Sizes refused before any route, in the JSON error shape (Bun's own limits, set wider, would answer
 * with an empty body): the body by its Content-Length, the headers by what they add up to.
 */
export function checkSizes(request: Request): void {
  const length = request.headers.get('content-length');
  let bytes = 0;
  for (const [name, value] of request.headers) bytes += name.length + value.length + 4;
  checkSizesOf(length === null ? undefined : Number(length), bytes);
}

/** The same check, from a body's Content-Length and what the headers add up to (name, value and 4 bytes each). */
export function checkSizesOf(contentLength: number | undefined, headerBytes: number): void {
  if (contentLength !== undefined && contentLength > LIMITS.requestBodyBytes) {
    throw new PlatError('PAYLOAD_TOO_LARGE', `the body is larger than ${LIMITS.requestBodyBytes / 1024 / 1024} MiB`);
  }
  if (headerBytes > LIMITS.headerBytes) {
    throw new PlatError('HEADERS_TOO_LARGE', `the request's headers take more than ${LIMITS.headerBytes / 1024} KiB`);
  }
}
