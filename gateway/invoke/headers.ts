import { PLATFORM_HEADER_PREFIX } from '../../lib/names';

/** Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are never forwarded. */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];

/**
 * Turns the client's request headers into those sent to the function, in place (copying them costs
 * more than the rest of the hop): hop-by-hop ones, the platform's bearer token (it must never reach
 * user code) and any `x-plat-*` header (only the gateway sets those) dropped, `host` left to fetch (the container's), forwarding headers added. The
 * body is forwarded as it came, compressed or not, so `accept-encoding` stays.
 */
export function toUpstreamHeaders(headers: Headers, clientIp: string | undefined, proto: 'http' | 'https'): Headers {
  const host = headers.get('host');
  for (const name of HOP_BY_HOP) headers.delete(name);
  headers.delete('authorization');
  headers.delete('host');
  dropPlatformHeaders(headers);
  if (clientIp) {
    const forwardedFor = headers.get('x-forwarded-for');
    headers.set('x-forwarded-for', forwardedFor ? `${forwardedFor}, ${clientIp}` : clientIp);
  }
  if (host) headers.set('x-forwarded-host', host);
  headers.set('x-forwarded-proto', proto);
  return headers;
}

/**
 * The function's answer headers as the client gets them, in place: hop-by-hop ones dropped, and the
 * platform's own (`x-plat-*`), so only the gateway can mark an answer as a platform error.
 */
export function toDownstreamHeaders(headers: Headers): Headers {
  for (const name of HOP_BY_HOP) headers.delete(name);
  dropPlatformHeaders(headers);
  return headers;
}

/** Deletes every `x-plat-*` header (collected first: deleting while iterating skips entries). */
function dropPlatformHeaders(headers: Headers): void {
  let platform: string[] | undefined;
  for (const name of headers.keys()) {
    if (!name.startsWith(PLATFORM_HEADER_PREFIX)) continue;
    platform ??= [];
    platform.push(name);
  }
  if (platform) for (const name of platform) headers.delete(name);
}
