import { createHash, timingSafeEqual } from 'node:crypto';
import { PlatError } from '../lib/errors';

/**
 * Checks `Authorization: Bearer <token>` in constant time (both sides hashed first, so neither the
 * token's length nor its prefix leaks through timing). Never logs the token.
 */
export function createTokenCheck(expected: string) {
  const expectedHash = createHash('sha256').update(expected).digest();
  return ({ request }: { request: Request }): void => {
    const header = request.headers.get('authorization') ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match?.[1]) {
      throw new PlatError('UNAUTHORIZED', 'missing bearer token: send "Authorization: Bearer $AUTH_TOKEN"');
    }
    const givenHash = createHash('sha256').update(match[1].trim()).digest();
    if (!timingSafeEqual(givenHash, expectedHash)) throw new PlatError('UNAUTHORIZED', 'invalid bearer token');
  };
}
