import { createHash, timingSafeEqual } from 'node:crypto';
import { PlatError } from '../lib/errors';
import { setBounded } from './bounded';

/** The management API's check, as a hook: resolves (or returns) when the request may go on. */
export type TokenCheck = (ctx: { request: Request }) => void | Promise<void>;

/**
 * Checks `Authorization: Bearer <token>`: the admin token, compared in constant time (both sides
 * hashed first, so neither the token's length nor its prefix leaks through timing), or a JWT whose
 * grant is `admin` when JWTs are configured (`adminJwt`). Never logs the token.
 */
export function createTokenCheck(expected: string, adminJwt?: (token: string) => Promise<boolean>): TokenCheck {
  const isAdmin = createAdminCheck(expected);
  return ({ request }) => {
    const token = bearerToken(request);
    if (token === undefined) {
      throw new PlatError('UNAUTHORIZED', 'missing bearer token: send "Authorization: Bearer $AUTH_TOKEN"');
    }
    if (isAdmin(token)) return;
    if (!adminJwt) throw new PlatError('UNAUTHORIZED', 'invalid bearer token');
    return adminJwt(token).then((admin) => {
      if (!admin) throw new PlatError('UNAUTHORIZED', 'invalid bearer token');
    });
  };
}

/**
 * Whether a token is the admin token (AUTH_TOKEN), compared in constant time. The answers for the
 * last TOKENS_KEPT tokens are kept, so a caller that sends the same token on every request pays for
 * the hash once (it was a microsecond of every invocation); a look-up by the whole token tells a
 * caller nothing of the admin token it does not already hold, as the invoke keys' cache (policy.ts).
 */
export function createAdminCheck(expected: string): (token: string) => boolean {
  const expectedHash = createHash('sha256').update(expected).digest();
  const known = new Map<string, boolean>();
  return (token) => {
    let admin = known.get(token);
    if (admin === undefined) {
      admin = timingSafeEqual(sha256(token), expectedHash);
      setBounded(known, token, admin, TOKENS_KEPT);
    }
    return admin;
  };
}

/** Tokens whose admin check is kept; past this the oldest is forgotten. */
const TOKENS_KEPT = 1000;

/** SHA-256 of a string: Bun's one-shot hasher where there is one (a quarter of createHash's cost), else node:crypto. */
const sha256: (text: string) => Uint8Array =
  typeof Bun === 'undefined' ? (text) => createHash('sha256').update(text).digest() : (text) => Bun.CryptoHasher.hash('sha256', text);

/** The token of `Authorization: Bearer <token>`, or undefined when there is none. */
export function bearerToken(request: Request): string | undefined {
  return tokenOf(request.headers.get('authorization') ?? '');
}

/** The token of an `Authorization` header's value, `Bearer <token>`, or undefined. */
export function tokenOf(authorization: string): string | undefined {
  const match = /^Bearer\s+(.+)$/i.exec(authorization);
  return match?.[1]?.trim() || undefined;
}
