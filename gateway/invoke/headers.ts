import { REQUEST_ID_PATTERN } from '../../lib/logs';
import { PLATFORM_HEADER_PREFIX, REFUSED_HEADER } from '../../lib/names';
import { tokenOf } from '../auth';
import { REQUEST_ID_HEADER } from './request-id';

/** Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are never forwarded. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * What a client says of where a request came from, other than X-Forwarded-For (which the gateway
 * extends): the gateway sets X-Forwarded-Host and -Proto itself, and no one vouches for the client's
 * own, so a function reading them gets one value, the gateway's.
 */
export const FORWARDING = new Set(['x-forwarded-host', 'x-forwarded-proto', 'forwarded', 'x-real-ip']);

/** What the invoke path needs of a request's headers, read in one pass. */
export interface RequestHeads {
  /**
   * The header lines the function gets (`name: value\r\n` each): the client's, less the hop-by-hop
   * ones, the platform's bearer token (it must never reach user code), `host` (the container's is
   * sent), the framing (the client sets it from the body), any `x-plat-*` header (only the gateway
   * sets those) and the client's forwarding headers but X-Forwarded-For (FORWARDING); plus the
   * request id and the gateway's forwarding headers. The body is forwarded as it
   * came, compressed or not, so `accept-encoding` stays.
   */
  lines: string;
  /** The client's `x-request-id` when well formed (1-128 letters, digits and `._:@/+=-`), else a new one. */
  requestId: string;
  /** The bearer token of `Authorization`, if any. */
  token?: string;
  /** The body's size by its Content-Length, if given. */
  contentLength?: number;
  /** What the headers add up to: name, value and 4 bytes each. */
  bytes: number;
  /**
   * The platform's own headers a trusted caller (the admin token: an async call's attempt, sent by
   * the worker) may pass on to the function, as header lines: `x-plat-attempt` and `x-plat-call-id`.
   */
  platformLines?: string;
}

/** The `x-plat-*` headers the invoke path passes on from a trusted caller. */
const PASSED_PLATFORM_HEADERS = new Set(['x-plat-attempt', 'x-plat-call-id']);

/**
 * Reads a request's headers once, for everything the invoke path needs of them (each look-up or
 * change of a Headers object crosses into native code; one pass costs less than the dozen it replaces).
 * Names in lower case: a Request's Headers, or the pairs the invoke front read (front.ts).
 */
export function readRequestHeaders(
  headers: Iterable<[string, string]>,
  clientIp: string | undefined,
  proto: 'http' | 'https',
): RequestHeads {
  let lines = '';
  let bytes = 0;
  let host: string | undefined;
  let forwardedFor: string | undefined;
  let givenId: string | undefined;
  let token: string | undefined;
  let contentLength: number | undefined;
  let platformLines: string | undefined;
  for (const [name, value] of headers) {
    bytes += name.length + value.length + 4;
    switch (name) {
      case 'authorization':
        token = tokenOf(value);
        continue;
      case 'host':
        host = value;
        continue;
      case 'x-forwarded-for':
        forwardedFor = value;
        continue;
      case REQUEST_ID_HEADER:
        givenId = value;
        continue;
      case 'content-length':
        contentLength = Number(value);
        continue;
    }
    if (HOP_BY_HOP.has(name) || FORWARDING.has(name)) continue;
    if (name.startsWith(PLATFORM_HEADER_PREFIX)) {
      if (PASSED_PLATFORM_HEADERS.has(name)) platformLines = `${platformLines ?? ''}${name}: ${value}\r\n`;
      continue;
    }
    lines += `${name}: ${value}\r\n`;
  }
  const requestId = givenId !== undefined && REQUEST_ID_PATTERN.test(givenId) ? givenId : crypto.randomUUID();
  lines += `${REQUEST_ID_HEADER}: ${requestId}\r\n`;
  if (clientIp) lines += `x-forwarded-for: ${forwardedFor ? `${forwardedFor}, ${clientIp}` : clientIp}\r\n`;
  else if (forwardedFor) lines += `x-forwarded-for: ${forwardedFor}\r\n`;
  if (host) lines += `x-forwarded-host: ${host}\r\n`;
  lines += `x-forwarded-proto: ${proto}\r\n`;
  return { lines, requestId, token, contentLength: Number.isNaN(contentLength) ? undefined : contentLength, bytes, platformLines };
}

/**
 * Whether a header of the function's answer is kept: not the hop-by-hop ones, nor the platform's
 * own (`x-plat-*`), so only the gateway can mark an answer as a platform error. The one exception is
 * a runtime's refusal of a request meant for another instance (421 with REFUSED_HEADER), which the
 * gateway reads and never passes on.
 */
export function isForwardedAnswerHeader(name: string, status: number): boolean {
  if (HOP_BY_HOP.has(name)) return false;
  return !name.startsWith(PLATFORM_HEADER_PREFIX) || (status === 421 && name === REFUSED_HEADER);
}
