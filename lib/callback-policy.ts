import { type LookupAddress, type LookupOptions, lookup } from 'node:dns';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/**
 * Where an async call's result may be POSTed (X-Callback-Url). Anyone who may invoke a function
 * names the URL and the worker sends to it, so by default it may not be this host (loopback, or any
 * address of its interfaces: the registry, Temporal, the gateway, the functions' bridges) nor a
 * link-local address (cloud metadata services), an unspecified or a multicast one.
 * PLAT_CALLBACK_ALLOW_LOCAL=true lifts that, for a receiver on the same machine.
 *
 * The gateway checks the URL when it accepts the call, and the worker checks the address it
 * connects to when it delivers (a name may resolve elsewhere by then).
 */

/** The addresses of this host's interfaces, as `isIP` forms in lower case. */
function hostAddresses(): Set<string> {
  const found = new Set<string>();
  for (const addresses of Object.values(networkInterfaces())) for (const a of addresses ?? []) found.add(a.address.toLowerCase());
  return found;
}

/** The IPv4 address an IPv4-mapped IPv6 address stands for, in either of its forms. */
function mappedIPv4(ip: string): string | undefined {
  const match = /^(?:0{0,4}:){0,5}(?:0{0,4}:)?:?ffff:(.+)$/.exec(ip);
  if (!match?.[1]) return undefined;
  const rest = match[1];
  if (isIP(rest) === 4) return rest;
  const hex = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(rest);
  if (!hex?.[1] || !hex[2]) return undefined;
  const high = Number.parseInt(hex[1], 16);
  const low = Number.parseInt(hex[2], 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/** Why a callback may not be sent to this IP address, or undefined when it may. */
export function addressRefusal(address: string, local: Set<string> = hostAddresses()): string | undefined {
  let ip = address.toLowerCase().replace(/^\[|\]$/g, '');
  // An IPv4 address written as IPv6 (::ffff:127.0.0.1, or ::ffff:7f00:1 as URLs write it) reaches the IPv4 one.
  ip = mappedIPv4(ip) ?? ip;
  const family = isIP(ip);
  if (family === 4) {
    const [a = 0, b = 0] = ip.split('.').map(Number);
    if (a === 127) return 'a loopback address';
    if (a === 0) return 'an unspecified address';
    if (a === 169 && b === 254) return 'a link-local address';
    if (a >= 224) return 'a multicast or reserved address';
  } else if (family === 6) {
    if (ip === '::1') return 'a loopback address';
    if (ip === '::') return 'an unspecified address';
    if (/^fe[89ab]/.test(ip)) return 'a link-local address';
    if (ip.startsWith('ff')) return 'a multicast address';
  } else {
    return 'not an IP address';
  }
  if (local.has(ip)) return "one of this host's own addresses";
  return undefined;
}

/** The error a refused callback address fails with: not worth trying again. */
export class CallbackRefused extends Error {}

function refused(host: string, address: string, why: string): CallbackRefused {
  const shown = host === address ? host : `${host} (${address})`;
  return new CallbackRefused(
    `X-Callback-Url may not point at ${shown}: it is ${why}. Callbacks go to other machines; set PLAT_CALLBACK_ALLOW_LOCAL=true to allow a receiver on this one`,
  );
}

/** A callback URL's host, as the checks take it (an IPv6 address without its brackets). */
export function callbackHost(url: string): string {
  return new URL(url).hostname.replace(/^\[|\]$/g, '');
}

/** The refusal of a host written as an IP address (a connection to it looks up no name), if it is refused. */
export function literalRefusal(host: string): CallbackRefused | undefined {
  const why = isIP(host) ? addressRefusal(host) : undefined;
  return why ? refused(host, host, why) : undefined;
}

/** Resolves a callback URL's host and checks every address it has; throws CallbackRefused (or the lookup's error). */
export async function checkCallbackUrl(url: string): Promise<void> {
  const host = callbackHost(url);
  const refusal = literalRefusal(host);
  if (refusal) throw refusal;
  if (isIP(host)) return;
  await new Promise<void>((resolve, reject) => guardedLookup(host, { all: true }, (error) => (error ? reject(error) : resolve())));
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for node:http that refuses the addresses callbacks may not reach: the connection goes
 * to the address checked here, so a name cannot resolve to an allowed address at the check and to a
 * refused one at the connection.
 */
export function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : (options.family ?? 0);
  lookup(hostname, { family, all: true }, (error, addresses) => {
    if (error) return callback(error, []);
    const local = hostAddresses();
    for (const { address } of addresses) {
      const why = addressRefusal(address, local);
      if (why) return callback(refused(hostname, address, why) as NodeJS.ErrnoException, []);
    }
    const [first] = addresses;
    if (options.all) callback(null, addresses);
    else if (first) callback(null, first.address, first.family);
    else callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
  });
}
