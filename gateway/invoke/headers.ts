/** Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are never forwarded. */
const HOP_BY_HOP = new Set([
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
 * Headers for the request to the function: hop-by-hop ones dropped, the platform's bearer token
 * dropped (it must never reach user code), forwarding headers added. `accept-encoding: identity`
 * because Bun's fetch would decompress a compressed answer yet keep its Content-Encoding.
 */
export function upstreamRequestHeaders(incoming: Headers, clientUrl: URL, clientIp: string | undefined): Headers {
  const headers = new Headers();
  for (const [key, value] of incoming) {
    if (HOP_BY_HOP.has(key) || key === 'authorization' || key === 'host' || key === 'accept-encoding') continue;
    headers.append(key, value);
  }
  const forwardedFor = incoming.get('x-forwarded-for');
  if (clientIp) headers.set('x-forwarded-for', forwardedFor ? `${forwardedFor}, ${clientIp}` : clientIp);
  headers.set('x-forwarded-host', incoming.get('host') ?? clientUrl.host);
  headers.set('x-forwarded-proto', clientUrl.protocol.replace(':', ''));
  headers.set('accept-encoding', 'identity');
  return headers;
}

/** Headers of the function's answer as the client gets them. */
export function downstreamResponseHeaders(upstream: Headers): Headers {
  const headers = new Headers();
  for (const [key, value] of upstream) {
    if (HOP_BY_HOP.has(key)) continue;
    headers.append(key, value);
  }
  // Bun's fetch has already decompressed the body: the length and encoding no longer describe it.
  if (headers.has('content-encoding')) {
    headers.delete('content-encoding');
    headers.delete('content-length');
  }
  return headers;
}
