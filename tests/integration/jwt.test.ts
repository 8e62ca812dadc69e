import { afterAll, beforeAll, describe, expect, it, setDefaultTimeout } from 'bun:test';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { deployText } from '../support/functions';
import { extraGateway, INTEGRATION_TIMEOUT_MS, stack, type TestStack } from '../support/stack';

setDefaultTimeout(INTEGRATION_TIMEOUT_MS);

const ISSUER = 'https://issuer.plat.test';
const AUDIENCE = 'plat-gateway';

let s: TestStack;
let dir: string;
let fn: string;
let otherFn: string;
let keys: Awaited<ReturnType<typeof generateKeyPair>>;
let strangerKeys: Awaited<ReturnType<typeof generateKeyPair>>;
let byFile: Awaited<ReturnType<typeof extraGateway>>;
let byJwks: Awaited<ReturnType<typeof extraGateway>>;
let jwks: ReturnType<typeof Bun.serve>;

beforeAll(async () => {
  s = await stack();
  fn = s.name('jwt');
  otherFn = s.name('jwt-other');
  await deployText(s, fn, 'jwt answers');
  await deployText(s, otherFn, 'other answers');
  keys = await generateKeyPair('ES256');
  strangerKeys = await generateKeyPair('ES256');
  dir = await mkdtemp(join(tmpdir(), 'plat-jwt-'));
  await writeFile(join(dir, 'public.pem'), await exportSPKI(keys.publicKey));
  // The issuer's JWKS, as an identity provider publishes it.
  const jwk = { ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  jwks = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => Response.json({ keys: [jwk] }) });
  const common = { JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE };
  byFile = await extraGateway(s, { ...common, JWT_PUBLIC_KEY_FILE: join(dir, 'public.pem') });
  byJwks = await extraGateway(s, { ...common, JWT_JWKS_URL: `http://127.0.0.1:${jwks.port}/.well-known/jwks.json` });
}, INTEGRATION_TIMEOUT_MS);

afterAll(async () => {
  await byFile?.stop();
  await byJwks?.stop();
  jwks?.stop(true);
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function token(claims: JWTPayload, options: { expires?: string | number; key?: CryptoKey; audience?: string } = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.expires ?? '5m')
    .sign(options.key ?? keys.privateKey);
}

const call = (base: string, path: string, bearer: string) => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${bearer}` } });

describe.each(['a public key file', 'a JWKS URL'])('JWTs verified with %s', (how) => {
  const gateway = () => (how === 'a public key file' ? byFile : byJwks).url;

  it('invoke the functions their plat claim names, and nothing else', async () => {
    const jwt = await token({ plat: [fn] });
    expect(await (await call(gateway(), `/function/${fn}`, jwt)).text()).toBe('jwt answers');
    expect((await call(gateway(), `/function/${otherFn}`, jwt)).status).toBe(401);
    expect((await call(gateway(), '/functions', jwt)).status).toBe(401);
    // The scope claim works the same way.
    expect(await (await call(gateway(), `/function/${otherFn}`, await token({ scope: `read ${otherFn}` }))).text()).toBe('other answers');
  });

  it('take admin for everything, the management API included', async () => {
    const jwt = await token({ plat: 'admin' });
    expect((await call(gateway(), '/functions', jwt)).status).toBe(200);
    expect(await (await call(gateway(), `/function/${otherFn}`, jwt)).text()).toBe('other answers');
  });

  it('refuse an expired token, one for another audience, and one signed by another key', async () => {
    const expired = await token({ plat: [fn] }, { expires: Math.floor(Date.now() / 1000) - 120 });
    const elsewhere = await token({ plat: [fn] }, { audience: 'another-service' });
    const forged = await token({ plat: 'admin' }, { key: strangerKeys.privateKey });
    for (const jwt of [expired, elsewhere, forged]) {
      const response = await call(gateway(), `/function/${fn}`, jwt);
      expect(response.status).toBe(401);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    }
    expect((await call(gateway(), '/functions', forged)).status).toBe(401);
  });

  it('allow a little clock skew', async () => {
    const justExpired = await token({ plat: [fn] }, { expires: Math.floor(Date.now() / 1000) - 5 });
    expect((await call(gateway(), `/function/${fn}`, justExpired)).status).toBe(200);
  });
});
