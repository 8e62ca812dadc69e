import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify } from 'jose';
import type { Settings } from '../../lib/settings';
import { setBounded } from '../bounded';

/** What a verified token allows: everything (`admin`), or invoking the functions it names. */
export interface Grant {
  admin: boolean;
  functions: Set<string>;
}

/** Clock skew allowed between the issuer and this gateway, on `exp` and `nbf`. */
const CLOCK_SKEW_SECONDS = 30;
/** Verified tokens remembered (until they expire), so a warm request with a JWT costs a map lookup. */
const CACHE_SIZE = 1000;
/** The shape of a JWS compact token: three base64url parts. Anything else is not one. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Verifies bearer JWTs (jose): the signature against the JWKS at JWT_JWKS_URL (fetched once and
 * cached, refetched when a token names a key it does not know) or the PEM key in
 * JWT_PUBLIC_KEY_FILE; the issuer, the audience, and `exp`/`nbf` with 30 s of skew. The grant is
 * the `plat` claim (a name or a list of names) or the `scope` claim (names separated by spaces):
 * function names, or `admin` for everything.
 */
export function createJwtVerifier(settings: NonNullable<Settings['jwt']>): (token: string) => Promise<Grant | undefined> {
  const key = settings.jwksUrl
    ? createRemoteJWKSet(new URL(settings.jwksUrl))
    : createPublicKey(readFileSync(settings.publicKeyFile as string, 'utf8'));
  const cache = new Map<string, { grant: Grant; until: number }>();
  return async (token) => {
    if (!JWT_SHAPE.test(token)) return undefined;
    const cached = cache.get(token);
    if (cached && cached.until > Date.now()) return cached.grant;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key as Parameters<typeof jwtVerify>[1], {
        issuer: settings.issuer,
        audience: settings.audience,
        clockTolerance: CLOCK_SKEW_SECONDS,
        requiredClaims: ['exp'],
      }));
    } catch (error) {
      if (error instanceof errors.JOSEError) return undefined;
      throw error;
    }
    const grant = grantOf(payload);
    setBounded(cache, token, { grant, until: ((payload.exp as number) + CLOCK_SKEW_SECONDS) * 1000 }, CACHE_SIZE);
    return grant;
  };
}

function grantOf(payload: JWTPayload): Grant {
  const claim = payload.plat;
  const names =
    typeof claim === 'string'
      ? [claim]
      : Array.isArray(claim)
        ? claim.filter((n): n is string => typeof n === 'string')
        : typeof payload.scope === 'string'
          ? payload.scope.split(' ').filter(Boolean)
          : [];
  return { admin: names.includes('admin'), functions: new Set(names) };
}
