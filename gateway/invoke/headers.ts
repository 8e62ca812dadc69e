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
 * more than the rest of the hop): hop-by-hop ones and the platform's bearer token dropped (it must
 * never reach user code), `host` left to fetch (the container's), forwarding headers added. The
 * body is forwarded as it came, compressed or not, so `accept-encoding` stays.
 */
export function toUpstreamHeaders(headers: Headers, clientIp: string | undefined, proto: 'http' | 'https'): Headers {
  const host = headers.get('host');
  for (const name of HOP_BY_HOP) headers.delete(name);
  headers.delete('authorization');
  headers.delete('host');
  if (clientIp) {
    const forwardedFor = headers.get('x-forwarded-for');
    headers.set('x-forwarded-for', forwardedFor ? `${forwardedFor}, ${clientIp}` : clientIp);
  }
  if (host) headers.set('x-forwarded-host', host);
  headers.set('x-forwarded-proto', proto);
  return headers;
}

/** The function's answer headers as the client gets them, in place: hop-by-hop ones dropped. */
export function toDownstreamHeaders(headers: Headers): Headers {
  for (const name of HOP_BY_HOP) headers.delete(name);
  return headers;
}
